//! Shared helpers: one-line fatal errors, raw-syscall result checking, small parsers.
const std = @import("std");
const linux = std.os.linux;

/// Exit code for any failed setup step (nothing has been exec'd yet).
pub const exit_setup: u8 = 125;
/// Exit code when the final execve itself fails (shell convention).
pub const exit_exec: u8 = 127;

pub fn writeAll(fd: i32, bytes: []const u8) void {
    var rest = bytes;
    while (rest.len > 0) {
        const rc = linux.write(fd, rest.ptr, rest.len);
        if (linux.getErrno(rc) == .INTR) continue;
        if (linux.getErrno(rc) != .SUCCESS or rc == 0) return;
        rest = rest[rc..];
    }
}

/// Print `gigmcp-bootstrap: <step>: <reason>` to stderr and exit with `code`.
pub fn dieCode(code: u8, step: []const u8, comptime fmt: []const u8, args: anytype) noreturn {
    var buf: [768]u8 = undefined;
    const msg = std.fmt.bufPrint(&buf, "gigmcp-bootstrap: {s}: " ++ fmt ++ "\n", .{step} ++ args) catch
        "gigmcp-bootstrap: error message too long\n";
    writeAll(2, msg);
    linux.exit_group(code);
}

pub fn die(step: []const u8, comptime fmt: []const u8, args: anytype) noreturn {
    dieCode(exit_setup, step, fmt, args);
}

/// Print a non-fatal notice with the same prefix.
/// execve failed: `gigmcp-bootstrap: exec PROGRAM: EXXX`, exit 127.
pub fn dieExec(prog: []const u8, e: linux.E) noreturn {
    var buf: [300]u8 = undefined;
    const step = std.fmt.bufPrint(&buf, "exec {s}", .{prog}) catch "exec";
    dieCode(exit_exec, step, "{}", .{errName(e)});
}

pub fn warn(comptime fmt: []const u8, args: anytype) void {
    var buf: [512]u8 = undefined;
    const msg = std.fmt.bufPrint(&buf, "gigmcp-bootstrap: " ++ fmt ++ "\n", args) catch return;
    writeAll(2, msg);
}

/// Errno as its C name ("EPERM"), or "errno N" for values Zig does not name.
pub fn errName(e: linux.E) ErrName {
    return .{ .e = e };
}
pub const ErrName = struct {
    e: linux.E,
    pub fn format(self: ErrName, comptime _: []const u8, _: std.fmt.FormatOptions, w: anytype) !void {
        if (std.enums.tagName(linux.E, self.e)) |n| {
            try w.print("E{s}", .{n});
        } else {
            try w.print("errno {d}", .{@intFromEnum(self.e)});
        }
    }
};

/// Return the raw syscall result, or die with `step: EXXX`.
pub fn check(step: []const u8, rc: usize) usize {
    const e = linux.getErrno(rc);
    if (e != .SUCCESS) die(step, "{}", .{errName(e)});
    return rc;
}

pub fn eql(a: []const u8, b: []const u8) bool {
    return std.mem.eql(u8, a, b);
}

pub fn parseU32(step: []const u8, s: []const u8) u32 {
    return std.fmt.parseInt(u32, s, 10) catch die(step, "not a valid number: '{s}'", .{s});
}

/// Command line after the mode word: options until `--`, then PROGRAM [ARGS...].
pub const Args = struct {
    argv: [][*:0]u8,
    i: usize = 0,

    /// Next option word, or null at `--` (then `program()` is valid).
    pub fn nextOpt(self: *Args) ?[]const u8 {
        if (self.i >= self.argv.len) die("usage", "missing '-- PROGRAM [ARGS...]'", .{});
        const a = std.mem.span(self.argv[self.i]);
        self.i += 1;
        if (eql(a, "--")) return null;
        return a;
    }

    pub fn value(self: *Args, opt: []const u8) [:0]const u8 {
        if (self.i >= self.argv.len) die("usage", "{s} needs a value", .{opt});
        const v = std.mem.span(self.argv[self.i]);
        self.i += 1;
        return v;
    }

    /// argv for execve: the kernel-provided argv array is NULL-terminated,
    /// so a pointer into it is a valid `char *const argv[]`.
    pub fn program(self: *Args) [*:null]const ?[*:0]const u8 {
        if (self.i >= self.argv.len) die("usage", "missing PROGRAM after '--'", .{});
        return @ptrCast(self.argv.ptr + self.i);
    }
};

/// Fixed-capacity list for repeated options (no allocator needed).
pub fn List(comptime T: type, comptime cap: usize) type {
    return struct {
        items: [cap]T = undefined,
        len: usize = 0,
        pub fn add(self: *@This(), opt: []const u8, v: T) void {
            if (self.len == cap) die("usage", "too many {s} options (max {d})", .{ opt, cap });
            self.items[self.len] = v;
            self.len += 1;
        }
        pub fn slice(self: *const @This()) []const T {
            return self.items[0..self.len];
        }
    };
}

/// envp for execve: the kernel-provided environment block is NULL-terminated.
pub fn environ() [*:null]const ?[*:0]const u8 {
    return @ptrCast(std.os.environ.ptr);
}
