//! Compiles policy.zig into a classic-BPF seccomp program at build time and
//! installs it.
const std = @import("std");
const linux = std.os.linux;
const u = @import("util.zig");
const policy = @import("policy.zig");

const Insn = extern struct { code: u16, jt: u8, jf: u8, k: u32 };
const Prog = extern struct { len: u16, filter: [*]const Insn };

// Classic BPF opcodes (<linux/filter.h>).
const LD_W_ABS = 0x20;
const ALU_AND_K = 0x54;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const RET_K = 0x06;

// struct seccomp_data offsets.
const OFF_NR = 0;
const OFF_ARCH = 4;
fn offArgLo(i: u3) u32 {
    return 16 + 8 * @as(u32, i); // little endian: low word first
}

const AUDIT_ARCH_X86_64 = 0xC000003E;
const X32_SYSCALL_BIT = 0x40000000;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const RET_ALLOW = 0x7fff0000;

fn ret(v: policy.Verdict) u32 {
    return switch (v) {
        .allow => RET_ALLOW,
        .eperm => RET_ERRNO | @as(u32, @intFromEnum(linux.E.PERM)),
        .enosys => RET_ERRNO | @as(u32, @intFromEnum(linux.E.NOSYS)),
    };
}

fn checkLen(c: policy.Check) usize {
    return if (c.op == .masked_eq) 3 else 2; // load, [and], jump
}
fn clauseLen(cl: policy.Clause) usize {
    var n: usize = 1; // ret
    for (cl.when) |c| n += checkLen(c);
    return n;
}
fn bodyLen(r: policy.Rule) usize {
    var n: usize = 1; // ret otherwise
    for (r.clauses) |cl| n += clauseLen(cl);
    return n;
}
fn progLen() usize {
    var n: usize = 6 + 1; // header + final allow
    for (policy.rules) |r| n += 1 + bodyLen(r);
    return n;
}

fn off8(comptime n: usize) u8 {
    if (n > 255) @compileError("seccomp policy: BPF jump too long, split the rule");
    return n;
}

/// The whole filter, built by the compiler; layout:
///   arch != x86_64 -> kill; nr has x32 bit -> kill;
///   for each rule: nr != sys -> skip rule; clauses...; ret otherwise;
///   ret allow.
pub const program: [progLen()]Insn = blk: {
    @setEvalBranchQuota(100_000);
    var p: [progLen()]Insn = undefined;
    var n: usize = 0;
    const S = struct {
        fn stmt(code: u16, k: u32) Insn {
            return .{ .code = code, .jt = 0, .jf = 0, .k = k };
        }
        fn jmp(code: u16, k: u32, jt: u8, jf: u8) Insn {
            return .{ .code = code, .jt = jt, .jf = jf, .k = k };
        }
    };
    const header = [_]Insn{
        S.stmt(LD_W_ABS, OFF_ARCH),
        S.jmp(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        S.stmt(RET_K, RET_KILL_PROCESS),
        S.stmt(LD_W_ABS, OFF_NR),
        S.jmp(JSET_K, X32_SYSCALL_BIT, 0, 1),
        S.stmt(RET_K, RET_KILL_PROCESS),
    };
    for (header) |i| {
        p[n] = i;
        n += 1;
    }
    for (policy.rules) |r| {
        // The accumulator holds nr here: every rule body ends in a ret, so
        // falling through to the next rule never happens after loading args.
        p[n] = S.jmp(JEQ_K, @intCast(@intFromEnum(r.sys)), 0, off8(bodyLen(r)));
        n += 1;
        for (r.clauses) |cl| {
            const end = n + clauseLen(cl) - 1; // index of this clause's ret
            for (cl.when) |c| {
                p[n] = S.stmt(LD_W_ABS, offArgLo(c.arg));
                n += 1;
                if (c.op == .masked_eq) {
                    p[n] = S.stmt(ALU_AND_K, c.mask);
                    n += 1;
                }
                // On failure jump just past the clause's ret (to the next clause).
                const fail = off8(end - n);
                p[n] = switch (c.op) {
                    .eq, .masked_eq => S.jmp(JEQ_K, c.value, 0, fail),
                    .ne => S.jmp(JEQ_K, c.value, fail, 0),
                    .any_bits => S.jmp(JSET_K, c.mask, 0, fail),
                };
                n += 1;
            }
            p[n] = S.stmt(RET_K, ret(cl.then));
            n += 1;
        }
        p[n] = S.stmt(RET_K, ret(r.otherwise));
        n += 1;
    }
    p[n] = S.stmt(RET_K, ret(.allow));
    n += 1;
    if (n != p.len) @compileError("seccomp: length mismatch");
    break :blk p;
};

pub fn install() void {
    const prog = Prog{ .len = program.len, .filter = &program };
    _ = u.check("seccomp: install filter", linux.seccomp(linux.SECCOMP.SET_MODE_FILTER, 0, &prog));
    const mode = linux.prctl(@intFromEnum(linux.PR.GET_SECCOMP), 0, 0, 0, 0);
    if (mode != linux.SECCOMP.MODE.FILTER) u.die("seccomp", "verify: mode is {d}, expected 2", .{mode});
}

// ---- tests: run the generated program through a tiny cBPF interpreter ----

fn eval(nr: u32, arch: u32, args: [6]u64) u32 {
    var d = std.mem.zeroes(linux.SECCOMP.data);
    d.nr = @bitCast(nr);
    d.arch = arch;
    d.arg0 = args[0];
    d.arg1 = args[1];
    d.arg2 = args[2];
    const bytes = std.mem.asBytes(&d);
    var acc: u32 = 0;
    var pc: usize = 0;
    while (true) {
        const i = program[pc];
        pc += 1;
        switch (i.code) {
            LD_W_ABS => acc = std.mem.readIntLittle(u32, bytes[i.k..][0..4]),
            ALU_AND_K => acc &= i.k,
            JEQ_K => pc += if (acc == i.k) i.jt else i.jf,
            JSET_K => pc += if (acc & i.k != 0) i.jt else i.jf,
            RET_K => return i.k,
            else => unreachable,
        }
    }
}

fn sys(comptime name: @TypeOf(.enum_literal), a: [6]u64) u32 {
    return eval(@intCast(@intFromEnum(@field(linux.SYS, @tagName(name)))), AUDIT_ARCH_X86_64, a);
}

test "policy verdicts" {
    const t = std.testing;
    const z = [_]u64{0} ** 6;
    const EPERM = ret(.eperm);
    const ALLOW = ret(.allow);
    try t.expectEqual(ALLOW, sys(.read, z));
    try t.expectEqual(EPERM, sys(.mount, z));
    try t.expectEqual(ret(.enosys), sys(.clone3, z));
    // wrong arch and x32 ABI are killed
    try t.expectEqual(@as(u32, RET_KILL_PROCESS), eval(0, 0x40000003, z));
    try t.expectEqual(@as(u32, RET_KILL_PROCESS), eval(X32_SYSCALL_BIT | 0, AUDIT_ARCH_X86_64, z));
    // clone: plain fork/thread flags allowed, namespace flags denied
    try t.expectEqual(ALLOW, sys(.clone, .{ 0x3d0f00, 0, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.clone, .{ 0x10000000 | 17, 0, 0, 0, 0, 0 }));
    // socket: families, raw, netlink protocols; upper 32 bits are ignored like the kernel does
    try t.expectEqual(ALLOW, sys(.socket, .{ 2, 1 | 0x80000, 0, 0, 0, 0 }));
    try t.expectEqual(ALLOW, sys(.socket, .{ 10, 2, 0, 0, 0, 0 }));
    try t.expectEqual(ALLOW, sys(.socket, .{ 1, 1, 0, 0, 0, 0 }));
    try t.expectEqual(ALLOW, sys(.socket, .{ 16, 3, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socket, .{ 16, 3, 9, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socket, .{ 2, 3, 1, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socket, .{ 2, 3 | 0x800, 1, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socket, .{ 17, 2, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socket, .{ 17 | (1 << 32), 2, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socket, .{ 40, 1, 0, 0, 0, 0 }));
    try t.expectEqual(ALLOW, sys(.socketpair, .{ 1, 1, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.socketpair, .{ 2, 1, 0, 0, 0, 0 }));
    // ioctl: only the two tty injection requests
    try t.expectEqual(ALLOW, sys(.ioctl, .{ 0, 0x5401, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.ioctl, .{ 0, 0x5412, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.ioctl, .{ 0, 0xffffffff_0000541C, 0, 0, 0, 0 }));
    // personality: query and PER_LINUX only
    try t.expectEqual(ALLOW, sys(.personality, .{ 0xffffffff, 0, 0, 0, 0, 0 }));
    try t.expectEqual(ALLOW, sys(.personality, .{ 0, 0, 0, 0, 0, 0 }));
    try t.expectEqual(EPERM, sys(.personality, .{ 0x0040000, 0, 0, 0, 0, 0 }));
}
