//! Mode `init`: first program bubblewrap runs inside the sandbox. Configures
//! the network with the capabilities bwrap granted, then gives up everything
//! (caps, new privileges, filesystem/network reach, dangerous syscalls) and
//! execs the MCP server.
const std = @import("std");
const linux = std.os.linux;
const u = @import("util.zig");
const netlink = @import("netlink.zig");
const landlock = @import("landlock.zig");
const seccomp = @import("seccomp.zig");

const usage = "init [--interface NAME --address A.B.C.D/P --gateway A.B.C.D] [--rw PATH]... [--connect-port PORT] -- PROGRAM [ARGS...]";
const sandbox_id: u32 = 65534;

pub fn run(argv: [][*:0]u8) noreturn {
    var a = u.Args{ .argv = argv };
    var iface: ?[]const u8 = null;
    var address: ?[]const u8 = null;
    var gateway: ?[]const u8 = null;
    var connect_port: ?u16 = null;
    var rw = u.List([:0]const u8, 32){};
    while (a.nextOpt()) |opt| {
        if (u.eql(opt, "--interface")) {
            iface = a.value(opt);
        } else if (u.eql(opt, "--address")) {
            address = a.value(opt);
        } else if (u.eql(opt, "--gateway")) {
            gateway = a.value(opt);
        } else if (u.eql(opt, "--rw")) {
            rw.add(opt, a.value(opt));
        } else if (u.eql(opt, "--connect-port")) {
            const v = a.value(opt);
            connect_port = std.fmt.parseInt(u16, v, 10) catch u.die("usage", "--connect-port: bad port '{s}'", .{v});
        } else u.die("usage", "unknown option '{s}' ({s})", .{ opt, usage });
    }
    if ((iface == null) != (address == null) or (iface == null) != (gateway == null))
        u.die("usage", "--interface, --address and --gateway go together", .{});
    // Parse everything before the first side effect.
    const net: ?Net = if (iface) |name| .{
        .name = name,
        .cidr = netlink.parseCidr4("usage: --address", address.?),
        .gateway = netlink.parseIp4("usage: --gateway", gateway.?),
    } else null;
    const prog_argv = a.program();

    setupNetwork(net);
    assertIdentity();
    dropCapabilities();
    noNewPrivs();
    landlock.apply(.{ .rw = rw.slice(), .connect_port = connect_port });
    seccomp.install();
    closeExtraFds();
    exec(prog_argv);
}

// Steps, in the order run() calls them. Each dies with a one-line message on failure.

const Net = struct { name: []const u8, cidr: netlink.Cidr4, gateway: [4]u8 };

/// 1. lo up; optionally address + default route on the veth the host moved in.
fn setupNetwork(net: ?Net) void {
    var nl = netlink.Socket.open();
    defer nl.close();
    // bwrap --unshare-net normally has lo up already; only touch it if not.
    const lo = nl.link("lo");
    if (!lo.up) nl.linkUp("lo", lo.index);
    const n = net orelse return;
    const idx = nl.link(n.name).index;
    nl.addAddr4(n.name, idx, n.cidr.addr, n.cidr.prefix);
    nl.linkUp(n.name, idx);
    nl.addDefaultRoute4(n.name, idx, n.gateway);
}

/// 2. uid/gid are already 65534 (bwrap --uid/--gid); make it explicit and assert it.
fn assertIdentity() void {
    _ = u.check("identity: setresgid", linux.setresgid(sandbox_id, sandbox_id, sandbox_id));
    _ = u.check("identity: setresuid", linux.setresuid(sandbox_id, sandbox_id, sandbox_id));
    var r: u32 = undefined;
    var e: u32 = undefined;
    var s: u32 = undefined;
    _ = u.check("identity: getresuid", linux.syscall3(.getresuid, @intFromPtr(&r), @intFromPtr(&e), @intFromPtr(&s)));
    if (r != sandbox_id or e != sandbox_id or s != sandbox_id) u.die("identity", "uid is {d}/{d}/{d}, expected 65534", .{ r, e, s });
    _ = u.check("identity: getresgid", linux.syscall3(.getresgid, @intFromPtr(&r), @intFromPtr(&e), @intFromPtr(&s)));
    if (r != sandbox_id or e != sandbox_id or s != sandbox_id) u.die("identity", "gid is {d}/{d}/{d}, expected 65534", .{ r, e, s });
    // setgroups is denied inside the user namespace; just make sure no other group is held.
    var groups: [64]u32 = undefined;
    const n = u.check("identity: getgroups", linux.syscall2(.getgroups, groups.len, @intFromPtr(&groups)));
    for (groups[0..n]) |g| if (g != sandbox_id) u.die("identity", "unexpected supplementary group {d}", .{g});
}

/// 3. Empty bounding, ambient, effective, permitted and inheritable sets.
fn dropCapabilities() void {
    const last = lastCap();
    // PR_CAPBSET_DROP needs CAP_SETPCAP, hence it is still held until here.
    var c: usize = 0;
    while (c <= last) : (c += 1)
        _ = u.check("capabilities: bounding set drop", linux.prctl(@intFromEnum(linux.PR.CAPBSET_DROP), c, 0, 0, 0));
    _ = u.check("capabilities: ambient clear", linux.prctl(@intFromEnum(linux.PR.CAP_AMBIENT), linux.PR.CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    var hdr = linux.cap_user_header_t{ .version = 0x20080522, .pid = 0 }; // _LINUX_CAPABILITY_VERSION_3
    const zero = [2]linux.cap_user_data_t{
        .{ .effective = 0, .permitted = 0, .inheritable = 0 },
        .{ .effective = 0, .permitted = 0, .inheritable = 0 },
    };
    _ = u.check("capabilities: capset", linux.capset(&hdr, &zero[0]));

    // Read everything back.
    var got: [2]linux.cap_user_data_t = undefined;
    _ = u.check("capabilities: capget", linux.capget(&hdr, &got[0]));
    for (got) |d| if (d.effective | d.permitted | d.inheritable != 0) u.die("capabilities", "verify: capget not all zero", .{});
    c = 0;
    while (c <= last) : (c += 1) {
        if (linux.prctl(@intFromEnum(linux.PR.CAPBSET_READ), c, 0, 0, 0) != 0) u.die("capabilities", "verify: cap {d} still in bounding set", .{c});
        if (linux.prctl(@intFromEnum(linux.PR.CAP_AMBIENT), linux.PR.CAP_AMBIENT_IS_SET, c, 0, 0) != 0) u.die("capabilities", "verify: cap {d} still ambient", .{c});
    }
}

/// Highest capability number the kernel knows, from /proc/sys/kernel/cap_last_cap,
/// falling back to probing PR_CAPBSET_READ until EINVAL if /proc is unusable.
fn lastCap() usize {
    const fd_rc = linux.open("/proc/sys/kernel/cap_last_cap", linux.O.RDONLY | linux.O.CLOEXEC, 0);
    if (linux.getErrno(fd_rc) == .SUCCESS) {
        const fd: i32 = @intCast(fd_rc);
        defer _ = linux.close(fd);
        var buf: [16]u8 = undefined;
        const n = linux.read(fd, &buf, buf.len);
        if (linux.getErrno(n) == .SUCCESS) {
            const txt = std.mem.trim(u8, buf[0..n], " \n");
            if (std.fmt.parseInt(u8, txt, 10)) |v| return v else |_| {}
        }
    }
    var c: usize = 0;
    while (linux.getErrno(linux.prctl(@intFromEnum(linux.PR.CAPBSET_READ), c + 1, 0, 0, 0)) == .SUCCESS) c += 1;
    return c;
}

/// 4. No privilege gain through execve (setuid bits, file caps) from here on.
fn noNewPrivs() void {
    _ = u.check("no_new_privs", linux.prctl(@intFromEnum(linux.PR.SET_NO_NEW_PRIVS), 1, 0, 0, 0));
    if (linux.prctl(@intFromEnum(linux.PR.GET_NO_NEW_PRIVS), 0, 0, 0, 0) != 1) u.die("no_new_privs", "verify: not set", .{});
}

/// 7a. Only stdio crosses into the server.
fn closeExtraFds() void {
    const rc = linux.syscall3(.close_range, 3, std.math.maxInt(u32), 0);
    if (linux.getErrno(rc) == .SUCCESS) return;
    // Kernels before 5.9: close one by one up to the fd limit.
    var lim: linux.rlimit = undefined;
    _ = u.check("close fds: getrlimit", linux.getrlimit(.NOFILE, &lim));
    var fd: usize = 3;
    const max = @min(lim.cur, 1 << 20);
    while (fd < max) : (fd += 1) _ = linux.close(@intCast(fd));
}

/// 7b. execve PROGRAM; a name without '/' is searched in $PATH like execvp.
fn exec(argv: [*:null]const ?[*:0]const u8) noreturn {
    const prog = std.mem.span(argv[0].?);
    const envp = u.environ();
    if (std.mem.indexOfScalar(u8, prog, '/') != null) {
        const rc = linux.execve(argv[0].?, argv, envp);
        u.dieExec(prog, linux.getErrno(rc));
    }
    var path: []const u8 = "/usr/local/bin:/usr/bin:/bin";
    for (std.os.environ) |kv| {
        const s = std.mem.span(kv);
        if (std.mem.startsWith(u8, s, "PATH=")) path = s[5..];
    }
    var err: linux.E = .NOENT;
    var it = std.mem.splitScalar(u8, path, ':');
    while (it.next()) |dir| {
        var buf: [4096]u8 = undefined;
        const d = if (dir.len == 0) "." else dir;
        const full = std.fmt.bufPrintZ(&buf, "{s}/{s}", .{ d, prog }) catch continue;
        const e = linux.getErrno(linux.execve(full.ptr, argv, envp));
        // Like execvp: remember EACCES, keep looking on "not here" errors.
        if (e == .ACCES) err = e else if (e != .NOENT and e != .NOTDIR) {
            err = e;
            break;
        }
    }
    u.dieExec(prog, err);
}
