//! Seccomp policy for sandboxed MCP servers. DATA ONLY: seccomp.zig compiles
//! this table into a classic-BPF program at build time.
//!
//! Semantics: a syscall not listed is allowed. For a listed syscall the
//! clauses are tried in order; the first clause whose checks all hold gives
//! the verdict, otherwise `otherwise` applies (EPERM unless stated).
//! Non-x86_64 ABIs (i386, x32) are killed before this table is consulted.
//!
//! Checks look at the LOW 32 BITS of an argument only. Every argument we
//! inspect (clone flags, socket family/type/protocol, ioctl request,
//! personality) is truncated to 32 bits by the kernel, so comparing the
//! upper half would only open a bypass (garbage in bits 32..63).
const SYS = @import("std").os.linux.SYS;

pub const Verdict = enum { allow, eperm, enosys };
pub const Op = enum {
    eq, // arg == value
    ne, // arg != value
    masked_eq, // (arg & mask) == value
    any_bits, // (arg & mask) != 0
};
pub const Check = struct { arg: u3, op: Op, value: u32 = 0, mask: u32 = 0xffff_ffff };
pub const Clause = struct { when: []const Check, then: Verdict };
pub const Rule = struct { sys: SYS, clauses: []const Clause = &.{}, otherwise: Verdict = .eperm };

// Values used below (from the kernel UAPI headers).
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWTIME = 0x00000080;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_TYPE_MASK = 0xf; // strips SOCK_NONBLOCK / SOCK_CLOEXEC
const NETLINK_ROUTE = 0;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541C;
const PER_LINUX = 0;
const PER_QUERY = 0xffff_ffff;

fn eq(arg: u3, v: u32) Check {
    return .{ .arg = arg, .op = .eq, .value = v };
}

pub const rules = [_]Rule{
    // Mounts & root changes: the filesystem view is fixed by bwrap.
    .{ .sys = .mount },
    .{ .sys = .umount2 },
    .{ .sys = .pivot_root },
    .{ .sys = .chroot },
    .{ .sys = .open_tree },
    .{ .sys = .move_mount },
    .{ .sys = .fsopen },
    .{ .sys = .fsconfig },
    .{ .sys = .fsmount },
    .{ .sys = .fspick },
    .{ .sys = .mount_setattr },

    // Namespaces: no new user/mount/net/... namespaces, no joining others.
    .{ .sys = .unshare },
    .{ .sys = .setns },
    .{ .sys = .clone, .clauses = &.{.{ .when = &.{.{ .arg = 0, .op = .any_bits, .mask = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWTIME }}, .then = .eperm }}, .otherwise = .allow },
    // clone3 flags live in memory BPF cannot read; ENOSYS makes libcs fall back to clone.
    .{ .sys = .clone3, .otherwise = .enosys },

    // Tracing & other processes' memory.
    .{ .sys = .ptrace },
    .{ .sys = .process_vm_readv },
    .{ .sys = .process_vm_writev },
    .{ .sys = .kcmp },
    .{ .sys = .pidfd_getfd },

    // Kernel code & observability.
    .{ .sys = .kexec_load },
    .{ .sys = .kexec_file_load },
    .{ .sys = .init_module },
    .{ .sys = .finit_module },
    .{ .sys = .delete_module },
    .{ .sys = .bpf },
    .{ .sys = .perf_event_open },
    .{ .sys = .lookup_dcookie },
    .{ .sys = .fanotify_init },

    // Keyrings (shared kernel state, frequent CVE source).
    .{ .sys = .keyctl },
    .{ .sys = .add_key },
    .{ .sys = .request_key },

    // Memory tricks used to win kernel races.
    .{ .sys = .userfaultfd },

    // io_uring: bypasses seccomp for the operations it performs.
    .{ .sys = .io_uring_setup },
    .{ .sys = .io_uring_enter },
    .{ .sys = .io_uring_register },

    // File handles: can open files outside the mount view.
    .{ .sys = .open_by_handle_at },
    .{ .sys = .name_to_handle_at },

    // System administration.
    .{ .sys = .reboot },
    .{ .sys = .swapon },
    .{ .sys = .swapoff },
    .{ .sys = .acct },
    .{ .sys = .syslog },
    .{ .sys = .quotactl },
    .{ .sys = .settimeofday },
    .{ .sys = .clock_settime },
    .{ .sys = .clock_adjtime },
    .{ .sys = .adjtimex },
    .{ .sys = .sethostname },
    .{ .sys = .setdomainname },
    .{ .sys = .iopl },
    .{ .sys = .ioperm },
    .{ .sys = .vhangup },
    .{ .sys = .uselib },
    .{ .sys = .ustat },
    .{ .sys = .sysfs },
    .{ .sys = .nfsservctl },
    // personality: only the query and plain PER_LINUX (no ADDR_NO_RANDOMIZE etc.).
    .{ .sys = .personality, .clauses = &.{
        .{ .when = &.{eq(0, PER_QUERY)}, .then = .allow },
        .{ .when = &.{eq(0, PER_LINUX)}, .then = .allow },
    } },

    // Sockets: only unix, IPv4/6 and read-mostly rtnetlink; no raw/packet sockets.
    // Exception to "no SOCK_RAW": AF_NETLINK/NETLINK_ROUTE, because netlink
    // sockets are SOCK_RAW by convention (getifaddrs, ip(8), libuv) and carry
    // no raw packets; without capabilities they can only query.
    .{ .sys = .socket, .clauses = &.{
        .{ .when = &.{ eq(0, AF_NETLINK), eq(2, NETLINK_ROUTE) }, .then = .allow },
        .{ .when = &.{eq(0, AF_NETLINK)}, .then = .eperm },
        .{ .when = &.{eq(0, AF_PACKET)}, .then = .eperm },
        .{ .when = &.{.{ .arg = 1, .op = .masked_eq, .mask = SOCK_TYPE_MASK, .value = SOCK_RAW }}, .then = .eperm },
        .{ .when = &.{eq(0, AF_UNIX)}, .then = .allow },
        .{ .when = &.{eq(0, AF_INET)}, .then = .allow },
        .{ .when = &.{eq(0, AF_INET6)}, .then = .allow },
    } },
    .{ .sys = .socketpair, .clauses = &.{.{ .when = &.{eq(0, AF_UNIX)}, .then = .allow }} },

    // Terminal injection: pushing input into / controlling the tty.
    .{ .sys = .ioctl, .clauses = &.{
        .{ .when = &.{eq(1, TIOCSTI)}, .then = .eperm },
        .{ .when = &.{eq(1, TIOCLINUX)}, .then = .eperm },
    }, .otherwise = .allow },
};
