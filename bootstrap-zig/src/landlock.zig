//! Landlock: filesystem, TCP and IPC-scope restrictions, using the best ABI
//! the running kernel offers (see Documentation/userspace-api/landlock.rst).
const std = @import("std");
const linux = std.os.linux;
const u = @import("util.zig");

// Filesystem access rights (ABI version that introduced them in brackets).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_BLOCK: u64 = 1 << 11;
const ALL_V1: u64 = (1 << 13) - 1; // EXECUTE .. MAKE_SYM [1]
const REFER: u64 = 1 << 13; // [2]
const TRUNCATE: u64 = 1 << 14; // [3]
const IOCTL_DEV: u64 = 1 << 15; // [5]
/// Rights that make sense on a non-directory; others are rejected by the kernel there.
const FILE_ONLY: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

// Network rights [4] and IPC scopes [6].
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: u32 = 1;
const RULE_NET_PORT: u32 = 2;

const RulesetAttr = extern struct { fs: u64, net: u64, scoped: u64 };
const PathBeneath = extern struct { allowed: u64 align(1), parent_fd: i32 align(1) }; // packed in C (12 bytes)
const NetPort = extern struct { allowed: u64, port: u64 };

pub const Config = struct {
    rw: []const [:0]const u8,
    connect_port: ?u16,
};

pub fn apply(cfg: Config) void {
    const v = linux.syscall3(.landlock_create_ruleset, 0, 0, CREATE_RULESET_VERSION);
    switch (linux.getErrno(v)) {
        .SUCCESS => {},
        // Not built into the kernel / disabled at boot: degrade, but say so.
        .NOSYS, .OPNOTSUPP => |e| {
            u.warn("landlock: not available ({}), continuing without it", .{u.errName(e)});
            return;
        },
        else => |e| u.die("landlock", "ABI query: {}", .{u.errName(e)}),
    }
    const abi = v;

    var fs = ALL_V1;
    if (abi >= 2) fs |= REFER;
    if (abi >= 3) fs |= TRUNCATE;
    if (abi >= 5) fs |= IOCTL_DEV;
    const attr = RulesetAttr{
        .fs = fs,
        .net = if (abi >= 4) NET_BIND_TCP | NET_CONNECT_TCP else 0,
        .scoped = if (abi >= 6) SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL else 0,
    };
    // Older kernels reject unknown trailing fields, so pass only what this ABI knows.
    const attr_size: usize = if (abi >= 6) 24 else if (abi >= 4) 16 else 8;
    const rs: i32 = @intCast(u.check("landlock: create ruleset", linux.syscall3(.landlock_create_ruleset, @intFromPtr(&attr), attr_size, 0)));

    addPath(rs, fs, "/", EXECUTE | READ_FILE | READ_DIR, false);
    addPath(rs, fs, "/dev", READ_FILE | WRITE_FILE | READ_DIR | IOCTL_DEV, true);
    for (cfg.rw) |p| addPath(rs, fs, p, fs & ~(MAKE_CHAR | MAKE_BLOCK), false);

    // TCP: binding is never allowed; connecting only to the one proxy port.
    if (abi < 4) u.warn("landlock: ABI {d} has no TCP rules, TCP bind/connect not restricted", .{abi});
    if (abi >= 4) if (cfg.connect_port) |port| {
        const r = NetPort{ .allowed = NET_CONNECT_TCP, .port = port };
        _ = u.check("landlock: connect-port rule", linux.syscall4(.landlock_add_rule, @intCast(rs), RULE_NET_PORT, @intFromPtr(&r), 0));
    };

    _ = u.check("landlock: restrict self", linux.syscall2(.landlock_restrict_self, @intCast(rs), 0));
    _ = linux.close(rs);
}

fn addPath(rs: i32, handled: u64, path: [:0]const u8, want: u64, optional: bool) void {
    const orc = linux.open(path, linux.O.PATH | linux.O.CLOEXEC, 0);
    switch (linux.getErrno(orc)) {
        .SUCCESS => {},
        .NOENT => if (optional) return else u.die("landlock", "{s}: does not exist", .{path}),
        else => |e| u.die("landlock", "open {s}: {}", .{ path, u.errName(e) }),
    }
    const fd: i32 = @intCast(orc);
    defer _ = linux.close(fd);
    var st: linux.Stat = undefined;
    const src = linux.fstat(fd, &st);
    if (linux.getErrno(src) != .SUCCESS) u.die("landlock", "stat {s}: {}", .{ path, u.errName(linux.getErrno(src)) });
    var allowed = want & handled;
    if (st.mode & linux.S.IFMT != linux.S.IFDIR) allowed &= FILE_ONLY;
    const r = PathBeneath{ .allowed = allowed, .parent_fd = fd };
    const rc = linux.syscall4(.landlock_add_rule, @intCast(rs), RULE_PATH_BENEATH, @intFromPtr(&r), 0);
    if (linux.getErrno(rc) != .SUCCESS) u.die("landlock", "rule for {s}: {}", .{ path, u.errName(linux.getErrno(rc)) });
}
