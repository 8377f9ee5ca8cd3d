#!/usr/bin/env bash
# End-to-end check of gigmcp-bootstrap: host `launch` -> bwrap -> sandbox `init`.
# Run as root from anywhere:  bootstrap-zig/check.sh [--bench]
# Everything happens inside a private network namespace created here
# (unshare --net); traffic never leaves loopback and our own veth pair.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${GIGMCP_BOOTSTRAP:-$HERE/zig-out/bin/gigmcp-bootstrap}
SANDBOX_UID=600123

if [[ $(id -u) != 0 ]]; then echo "check.sh: must run as root" >&2; exit 2; fi
if [[ ! -x $BIN ]]; then echo "check.sh: $BIN not built" >&2; exit 2; fi
# Re-exec once inside a fresh, empty network namespace.
if [[ ${GIGCHK_IN_NETNS:-} != 1 ]]; then
  exec env GIGCHK_IN_NETNS=1 unshare --net -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

T=$(mktemp -d /tmp/gigchk.XXXXXX)
chmod 755 "$T" # the sandbox uid must be able to reach the bound binary
cp "$BIN" "$T/gigmcp-bootstrap"
B=$T/gigmcp-bootstrap
CG2=/sys/fs/cgroup/unified/gigchk-$$ # hybrid host: cgroup2 here, v1 pids below
CG1=/sys/fs/cgroup/pids/gigchk-$$
[[ -d /sys/fs/cgroup/unified ]] || CG2=/sys/fs/cgroup/gigchk-$$ # pure cgroup2 host
cleanup() {
  rmdir "$CG2" "$CG1" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

FAILS=0
ok() { printf '  ok    %s\n' "$1"; }
bad() { printf '  FAIL  %s\n' "$1"; FAILS=$((FAILS + 1)); }
expect() { # name expected actual
  if [[ $2 == "$3" ]]; then ok "$1 = $3"; else bad "$1: expected '$2', got '$3'"; fi
}
field() { sed -n "s/^$1=//p" "$T/out" | head -n1; }

# bwrap flags as the gateway uses them; see README.md for why there is no
# --dev (devpts) and no --disable-userns (both nest a second user namespace,
# leaving init's CAP_NET_ADMIN useless for the sandbox's network namespace).
BWRAP=(/usr/bin/bwrap --unshare-all --unshare-user --uid 65534 --gid 65534
  --cap-add CAP_NET_ADMIN --cap-add CAP_SETPCAP --die-with-parent --new-session
  --ro-bind /usr /usr)
for d in bin sbin lib lib64 lib32 libx32; do
  if [[ -L /$d ]]; then BWRAP+=(--symlink "$(readlink "/$d")" "/$d")
  elif [[ -d /$d ]]; then BWRAP+=(--ro-bind "/$d" "/$d"); fi
done
for f in passwd group nsswitch.conf hosts resolv.conf ld.so.cache ssl alternatives; do
  BWRAP+=(--ro-bind-try "/etc/$f" "/etc/$f")
done
BWRAP+=(--proc /proc --tmpfs /tmp --dir /home/sandbox --setenv HOME /home/sandbox --chdir /home/sandbox
  --ro-bind "$B" /gigmcp-bootstrap)
# The flags of the original design, for comparison below.
SPEC_BWRAP=("${BWRAP[@]}" --dev /dev --disable-userns)
for dev in null zero full random urandom; do BWRAP+=(--dev-bind "/dev/$dev" "/dev/$dev"); done
BWRAP+=(--symlink /proc/self/fd /dev/fd)
INIT=(/gigmcp-bootstrap init --rw /tmp --rw /home/sandbox --connect-port 8081)

# ---------------------------------------------------------------- in-sandbox probes
read -r -d '' PROBES <<'SH'
r() { echo "$1=$2"; }
r uid "$(id -u)"
r gid "$(id -g)"
for k in CapEff CapPrm CapInh CapBnd CapAmb NoNewPrivs Seccomp; do
  r "$k" "$(sed -n "s/^$k:[[:space:]]*//p" /proc/self/status)"
done
r nofile "$(ulimit -n)"
r core "$(ulimit -c)"
r stack "$(ulimit -s)"
r route "$(ip -4 route 2>&1 | tr '\n' ';')"
r addr "$(ip -4 -o addr show dev eth0 2>&1 | awk '{print $4}')"
try() { if ( eval "$1" ) >/dev/null 2>&1; then echo ok; else echo denied; fi; }
r write_etc "$(try ': > /etc/gigchk')"
r write_usr "$(try ': > /usr/gigchk')"
r write_root "$(try 'mkdir /gigchk')"
r write_tmp "$(try 'echo hi > /tmp/gigchk && test "$(cat /tmp/gigchk)" = hi')"
r write_home "$(try 'mkdir /home/sandbox/d && echo hi > /home/sandbox/d/f')"
r write_devnull "$(try 'echo hi > /dev/null')"
r mknod_fifo_tmp "$(try 'mkfifo /tmp/fifo')"
r userns "$(try 'unshare -U true')"
r mount "$(try 'mount -t tmpfs none /tmp')"
r setarch_norandom "$(try 'setarch x86_64 -R true')"
r execute_tmp "$(try 'cp /bin/true /tmp/t && /tmp/t')"
python3 - <<'PY'
import ctypes, errno, fcntl, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def t(name, f):
    try:
        f(); r = "ok"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    print(f"{name}={r}")
def sc(nr, *a):
    if libc.syscall(nr, *a) == -1:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
def conn(port):
    s = socket.socket(); s.settimeout(2)
    try: s.connect(("127.0.0.1", port))
    finally: s.close()
def bind():
    s = socket.socket()
    try: s.bind(("127.0.0.1", 0))
    finally: s.close()
t("sock_raw_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
t("sock_packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
t("sock_netlink_audit", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9))
t("sock_netlink_route", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
t("sock_tcp", lambda: socket.socket().close())
t("sock_udp6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
t("sock_unix", lambda: socket.socket(socket.AF_UNIX).close())
t("sock_vsock", lambda: socket.socket(40, socket.SOCK_STREAM))
t("socketpair_unix", lambda: [s.close() for s in socket.socketpair()])
t("connect_8081", lambda: conn(8081))   # landlock allows: expect ECONNREFUSED
t("connect_8082", lambda: conn(8082))   # landlock denies: expect EACCES
t("bind_tcp", bind)
t("clone3", lambda: sc(435, None, 0))
t("ptrace", lambda: sc(101, 0x10, 1, 0, 0))  # PTRACE_ATTACH pid 1
t("io_uring_setup", lambda: sc(425, 1, None))
t("bpf", lambda: sc(321, 0, None, 0))
t("keyctl", lambda: sc(250, 0, 0, 0, 0))
t("userfaultfd", lambda: sc(323, 0))
t("clone_newuser", lambda: sc(56, 0x10000000 | 17, 0, 0, 0, 0))
t("tiocsti", lambda: fcntl.ioctl(0, 0x5412, b"x"))
t("kill_outside_domain", lambda: os.kill(1, 0))  # pid 1 = bwrap, outside landlock scope
t("fork_exec", lambda: os.waitpid(os.spawnv(os.P_NOWAIT, "/bin/true", ["true"]), 0))
PY
echo CHECKS-DONE
read -r _ # hold the sandbox open while the host inspects it
SH

echo "== main scenario: launch -> bwrap -> init (veth eth0, 10.88.200.2/30)"
mkdir -p "$CG2" "$CG1" 2>/dev/null
CGARGS=()
for cg in "$CG2" "$CG1"; do [[ -f $cg/cgroup.procs ]] && CGARGS+=(--cgroup-procs "$cg/cgroup.procs"); done
mkfifo "$T/info" "$T/block" "$T/stdin"
"$B" launch --uid $SANDBOX_UID --gid $SANDBOX_UID "${CGARGS[@]}" --nofile 512 -- \
  "${BWRAP[@]}" --info-fd 3 --block-fd 4 -- \
  "${INIT[@]}" --interface eth0 --address 10.88.200.2/30 --gateway 10.88.200.1 -- \
  /bin/sh -c "$PROBES" 3>"$T/info" 4<"$T/block" <"$T/stdin" >"$T/out" 2>"$T/err" &
LPID=$!
exec 5<"$T/info" 6>"$T/block" 7>"$T/stdin"

CPID=
while IFS= read -r -t 10 -u 5 line; do
  if [[ $line =~ \"child-pid\":\ *([0-9]+) ]]; then CPID=${BASH_REMATCH[1]}; break; fi
done
exec 5<&-
if [[ -z $CPID ]]; then
  bad "no child-pid from bwrap --info-fd"; cat "$T/err"; exit 1
fi
ip link add gigchk0 type veth peer name eth0 netns "$CPID"
ip addr add 10.88.200.1/30 dev gigchk0
ip link set gigchk0 up
printf x >&6
exec 6>&-

for _ in $(seq 100); do grep -q '^CHECKS-DONE' "$T/out" && break; sleep 0.1; done
# Host view: the server process is bwrap-pid1's child; it must be uid 600123 on the host.
SPID=$(cat /proc/"$CPID"/task/*/children 2>/dev/null | awk '{print $1}')
HOST_UID=$(awk '/^Uid:/{print $2"/"$3"/"$4"/"$5}' /proc/"$SPID"/status 2>/dev/null)
HOST_CG=$(cat /proc/"$SPID"/cgroup 2>/dev/null | tr '\n' ' ')
printf 'go\n' >&7
exec 7>&-
wait "$LPID"
RC=$?

expect "exit status" 0 "$RC"
expect "host uid of sandboxed server (pid $SPID)" "$SANDBOX_UID/$SANDBOX_UID/$SANDBOX_UID/$SANDBOX_UID" "$HOST_UID"
if ((${#CGARGS[@]})); then
  [[ $HOST_CG == *"::/gigchk-$$ "* ]] && ok "in cgroup v2 gigchk-$$" || bad "cgroup v2 membership: $HOST_CG"
  [[ ! -d $CG1 || $HOST_CG == *"pids:/gigchk-$$ "* ]] && ok "in cgroup v1 pids:/gigchk-$$" || bad "cgroup v1 membership: $HOST_CG"
fi
expect "id -u" 65534 "$(field uid)"
expect "id -g" 65534 "$(field gid)"
for k in CapEff CapPrm CapInh CapBnd CapAmb; do expect "$k" 0000000000000000 "$(field $k)"; done
expect NoNewPrivs 1 "$(field NoNewPrivs)"
expect Seccomp 2 "$(field Seccomp)"
expect "ulimit -n" 512 "$(field nofile)"
expect "ulimit -c" 0 "$(field core)"
expect "ulimit -s (inherited unchanged)" "$(ulimit -s)" "$(field stack)"
expect "eth0 address" 10.88.200.2/30 "$(field addr)"
expect "ip -4 route" "default via 10.88.200.1 dev eth0 ;10.88.200.0/30 dev eth0 proto kernel scope link src 10.88.200.2 ;" "$(field route)"
expect "write /etc" denied "$(field write_etc)"
expect "write /usr" denied "$(field write_usr)"
expect "mkdir /" denied "$(field write_root)"
expect "write /tmp" ok "$(field write_tmp)"
expect "write home" ok "$(field write_home)"
expect "write /dev/null" ok "$(field write_devnull)"
expect "mkfifo in /tmp" ok "$(field mknod_fifo_tmp)"
expect "exec from /tmp" ok "$(field execute_tmp)"
expect "unshare -U" denied "$(field userns)"
expect "mount" denied "$(field mount)"
expect "setarch -R (personality)" denied "$(field setarch_norandom)"
expect "socket AF_INET SOCK_RAW" EPERM "$(field sock_raw_inet)"
expect "socket AF_PACKET" EPERM "$(field sock_packet)"
expect "socket NETLINK_AUDIT" EPERM "$(field sock_netlink_audit)"
expect "socket NETLINK_ROUTE" ok "$(field sock_netlink_route)"
expect "socket AF_INET stream" ok "$(field sock_tcp)"
expect "socket AF_INET6 dgram" ok "$(field sock_udp6)"
expect "socket AF_UNIX" ok "$(field sock_unix)"
expect "socket AF_VSOCK" EPERM "$(field sock_vsock)"
expect "socketpair AF_UNIX" ok "$(field socketpair_unix)"
expect "connect tcp :8081 (allowed, nobody listens)" ECONNREFUSED "$(field connect_8081)"
expect "connect tcp :8082 (landlock)" EACCES "$(field connect_8082)"
expect "bind tcp (landlock)" EACCES "$(field bind_tcp)"
expect "clone3" ENOSYS "$(field clone3)"
expect "ptrace" EPERM "$(field ptrace)"
expect "io_uring_setup" EPERM "$(field io_uring_setup)"
expect "bpf" EPERM "$(field bpf)"
expect "keyctl" EPERM "$(field keyctl)"
expect "userfaultfd" EPERM "$(field userfaultfd)"
expect "clone(CLONE_NEWUSER)" EPERM "$(field clone_newuser)"
expect "ioctl TIOCSTI" EPERM "$(field tiocsti)"
expect "kill(1) outside landlock domain" EPERM "$(field kill_outside_domain)"
expect "fork+exec still works" ok "$(field fork_exec)"
if [[ -s $T/err ]]; then echo "  (sandbox stderr:)"; sed 's/^/    /' "$T/err"; fi

# ---------------------------------------------------------------- failure paths
echo "== failure paths: one line on stderr, exit 125, program never runs"
fail_case() { # name expected-stderr-line command...
  local name=$1 want=$2; shift 2
  out=$("$@" 2>"$T/ferr" </dev/null); rc=$?
  err=$(cat "$T/ferr")
  if [[ $rc == 125 && $err == "$want" && $out != *RAN* ]]; then ok "$name -> 125: $err"
  else bad "$name: rc=$rc stdout='$out' stderr='$err' (want '$want')"; fi
}
RAN=(/bin/sh -c 'echo RAN')
L=("$B" launch --uid $SANDBOX_UID --gid $SANDBOX_UID --)
fail_case "missing interface" "gigmcp-bootstrap: network: interface missing0 not found" \
  "${L[@]}" "${BWRAP[@]}" -- "${INIT[@]}" --interface missing0 --address 10.9.9.2/30 --gateway 10.9.9.1 -- "${RAN[@]}"
fail_case "missing --rw path" "gigmcp-bootstrap: landlock: /nonexistent: does not exist" \
  "${L[@]}" "${BWRAP[@]}" -- "${INIT[@]}" --rw /nonexistent -- "${RAN[@]}"
fail_case "bad --address" "gigmcp-bootstrap: usage: --address: invalid IPv4 address '10.1.300.2'" \
  "${L[@]}" "${BWRAP[@]}" -- "${INIT[@]}" --interface lo --address 10.1.300.2/30 --gateway 10.1.1.1 -- "${RAN[@]}"
fail_case "launch not as root" "gigmcp-bootstrap: setgroups: EPERM" \
  setpriv --reuid 600124 --regid 600124 --clear-groups "${L[@]}" "${RAN[@]}"
fail_case "launch bad cgroup" "gigmcp-bootstrap: cgroup: open /nonexistent/cgroup.procs: ENOENT" \
  "$B" launch --uid $SANDBOX_UID --gid $SANDBOX_UID --cgroup-procs /nonexistent/cgroup.procs -- "${RAN[@]}"
fail_case "launch uid 0" "gigmcp-bootstrap: usage: refusing uid/gid 0" \
  "$B" launch --uid 0 --gid 0 -- "${RAN[@]}"
# With --dev and/or --disable-userns bwrap nests a second user namespace, so
# init's CAP_NET_ADMIN does not cover the netns: address setup fails clearly...
fail_case "--dev/--disable-userns + interface" "gigmcp-bootstrap: network: add address lo: EPERM (no CAP_NET_ADMIN over this netns)" \
  "${L[@]}" "${SPEC_BWRAP[@]}" -- "${INIT[@]}" --interface lo --address 10.9.9.2/30 --gateway 10.9.9.1 -- "${RAN[@]}"
# ...while without --interface the rest of init works under those flags too.
out=$("${L[@]}" "${SPEC_BWRAP[@]}" -- "${INIT[@]}" -- /bin/sh -c 'grep -E "^(CapEff|Seccomp|NoNewPrivs):" /proc/self/status | tr -s "\t\n" "  "' 2>&1)
expect "--dev/--disable-userns without --interface" "CapEff: 0000000000000000 NoNewPrivs: 1 Seccomp: 2 " "$out"
out=$("${L[@]}" "${BWRAP[@]}" -- "${INIT[@]}" -- /nonexistent/prog 2>&1); rc=$?
expect "exec failure (exit 127)" "127 gigmcp-bootstrap: exec /nonexistent/prog: ENOENT" "$rc $out"

# ---------------------------------------------------------------- timing
if [[ ${1:-} == --bench ]]; then
  echo "== timing: 20 runs each, median"
  median() { sort -n | awk '{a[NR]=$1} END{print int((NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2)}'; }
  run20() {
    for _ in $(seq 20); do
      s=$(date +%s%N); "$@" >/dev/null 2>&1 </dev/null; e=$(date +%s%N)
      echo $(((e - s) / 1000))
    done | median
  }
  plain=$(run20 "${L[@]}" "${BWRAP[@]}" -- /bin/true)
  boot=$(run20 "${L[@]}" "${BWRAP[@]}" -- "${INIT[@]}" -- /bin/true)
  echo "  launch+bwrap -- /bin/true:               ${plain} us"
  echo "  launch+bwrap -- init ... -- /bin/true:   ${boot} us  (init adds $((boot - plain)) us)"
fi

echo "== $([[ $FAILS == 0 ]] && echo PASS || echo "FAIL ($FAILS)")"
exit $((FAILS > 0))
