//! gigmcp-bootstrap: privilege-dropping shim around bubblewrap for Gig'MCP.
//!   launch  — on the host, as root, before bwrap (cgroups, rlimits, uid drop)
//!   init    — inside the sandbox, before the MCP server (net, caps, landlock, seccomp)
//! Any failed step prints one line `gigmcp-bootstrap: <step>: <reason>` and exits 125.
const std = @import("std");
const u = @import("util.zig");

pub fn main() noreturn {
    const argv = std.os.argv;
    if (argv.len < 2) usage();
    const mode = std.mem.span(argv[1]);
    if (u.eql(mode, "launch")) @import("launch.zig").run(argv[2..]);
    if (u.eql(mode, "init")) @import("init.zig").run(argv[2..]);
    usage();
}

fn usage() noreturn {
    u.die("usage", "gigmcp-bootstrap launch|init [OPTIONS] -- PROGRAM [ARGS...]", .{});
}

/// Keep panics (should never happen) on the one-line/125 contract and out of the binary size.
pub fn panic(msg: []const u8, _: ?*std.builtin.StackTrace, _: ?usize) noreturn {
    u.die("internal error", "{s}", .{msg});
}
