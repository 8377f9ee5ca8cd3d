//! Mode `launch`: runs on the host as root right before bubblewrap.
//! Puts itself into the given cgroups, sets rlimits, irreversibly drops to
//! the sandbox host uid/gid, arms PDEATHSIG and execs PROGRAM (bwrap).
const std = @import("std");
const linux = std.os.linux;
const u = @import("util.zig");

const usage = "launch --uid N --gid N [--cgroup-procs PATH]... [--nofile N] -- PROGRAM [ARGS...]";

pub fn run(argv: [][*:0]u8) noreturn {
    var a = u.Args{ .argv = argv };
    var uid: ?u32 = null;
    var gid: ?u32 = null;
    var nofile: ?u32 = null;
    var cgroups = u.List([:0]const u8, 16){};
    while (a.nextOpt()) |opt| {
        if (u.eql(opt, "--uid")) {
            uid = u.parseU32("usage: --uid", a.value(opt));
        } else if (u.eql(opt, "--gid")) {
            gid = u.parseU32("usage: --gid", a.value(opt));
        } else if (u.eql(opt, "--nofile")) {
            nofile = u.parseU32("usage: --nofile", a.value(opt));
        } else if (u.eql(opt, "--cgroup-procs")) {
            cgroups.add(opt, a.value(opt));
        } else u.die("usage", "unknown option '{s}' ({s})", .{ opt, usage });
    }
    const want_uid = uid orelse u.die("usage", "--uid is required ({s})", .{usage});
    const want_gid = gid orelse u.die("usage", "--gid is required ({s})", .{usage});
    // Refuse root targets outright; the post-drop checks below would also catch uid 0.
    if (want_uid == 0 or want_gid == 0) u.die("usage", "refusing uid/gid 0", .{});
    const prog_argv = a.program();
    const prog = std.mem.span(prog_argv[0].?);
    if (prog[0] != '/') u.die("usage", "PROGRAM must be an absolute path: '{s}'", .{prog});
    // Remembered so a parent that died before PDEATHSIG was armed is detected.
    const parent = linux.syscall0(.getppid);

    // 1. cgroups first, so everything exec'd from here on is accounted there.
    var pidbuf: [16]u8 = undefined;
    const pidtxt = std.fmt.bufPrint(&pidbuf, "{d}\n", .{linux.getpid()}) catch unreachable;
    for (cgroups.slice()) |path| writeFile(path, pidtxt);

    // 2. rlimits: no core dumps (they could leak secrets); optional fd cap.
    setLimit("rlimit core", .CORE, 0);
    if (nofile) |n| setLimit("rlimit nofile", .NOFILE, n);

    // 3. identity: groups, then gid, then uid (uid last: it removes the right to change the others).
    _ = u.check("setgroups", linux.syscall2(.setgroups, 0, 0));
    _ = u.check("setresgid", linux.setresgid(want_gid, want_gid, want_gid));
    _ = u.check("setresuid", linux.setresuid(want_uid, want_uid, want_uid));
    if (linux.getuid() != want_uid or linux.geteuid() != want_uid or
        linux.getgid() != want_gid or linux.getegid() != want_gid)
        u.die("verify ids", "uid/gid not as requested after setresuid/setresgid", .{});
    if (linux.syscall2(.getgroups, 0, 0) != 0) u.die("verify ids", "supplementary groups remain", .{});
    // The drop must be irreversible: regaining root has to fail.
    if (linux.getErrno(linux.setresuid(0, 0, 0)) == .SUCCESS) u.die("verify ids", "setresuid(0) still succeeds", .{});
    if (linux.getErrno(linux.setresgid(0, 0, 0)) == .SUCCESS) u.die("verify ids", "setresgid(0) still succeeds", .{});

    // 4. die with the gateway; armed after the uid change because that clears it.
    _ = u.check("pdeathsig", linux.prctl(@intFromEnum(linux.PR.SET_PDEATHSIG), linux.SIG.KILL, 0, 0, 0));
    if (linux.syscall0(.getppid) != parent) u.die("pdeathsig", "parent already exited", .{});

    // 5. exec; fds (e.g. bwrap's --info-fd/--block-fd pipes) are inherited unchanged.
    const rc = linux.execve(prog_argv[0].?, prog_argv, u.environ());
    u.dieExec(prog, linux.getErrno(rc));
}

fn writeFile(path: [:0]const u8, data: []const u8) void {
    const orc = linux.open(path, linux.O.WRONLY | linux.O.CLOEXEC, 0);
    if (linux.getErrno(orc) != .SUCCESS) u.die("cgroup", "open {s}: {}", .{ path, u.errName(linux.getErrno(orc)) });
    const fd: i32 = @intCast(orc);
    const rc = linux.write(fd, data.ptr, data.len);
    const e = linux.getErrno(rc);
    if (e != .SUCCESS) u.die("cgroup", "write {s}: {}", .{ path, u.errName(e) });
    if (rc != data.len) u.die("cgroup", "write {s}: short write", .{path});
    _ = linux.close(fd);
}

fn setLimit(step: []const u8, res: linux.rlimit_resource, n: u64) void {
    const lim = linux.rlimit{ .cur = n, .max = n };
    _ = u.check(step, linux.setrlimit(res, &lim));
}
