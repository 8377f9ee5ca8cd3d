//! Minimal rtnetlink client: just enough to bring links up, add one IPv4
//! address and a default route inside the sandbox's network namespace.
const std = @import("std");
const linux = std.os.linux;
const u = @import("util.zig");

// Constants from <linux/netlink.h> and <linux/rtnetlink.h>.
const NETLINK_ROUTE = 0;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const IFLA_IFNAME = 3;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;
const IFF_UP = 1;

const NlMsgHdr = extern struct { len: u32, type: u16, flags: u16, seq: u32, pid: u32 };
const IfInfoMsg = extern struct { family: u8, pad: u8 = 0, type: u16 = 0, index: i32, flags: u32, change: u32 };
const IfAddrMsg = extern struct { family: u8, prefixlen: u8, flags: u8 = 0, scope: u8, index: u32 };
const RtMsg = extern struct {
    family: u8,
    dst_len: u8,
    src_len: u8 = 0,
    tos: u8 = 0,
    table: u8,
    protocol: u8,
    scope: u8,
    type: u8,
    flags: u32 = 0,
};

pub const Socket = struct {
    fd: i32,
    seq: u32 = 0,

    pub fn open() Socket {
        const rc = u.check("network: netlink socket", linux.socket(linux.AF.NETLINK, linux.SOCK.RAW | linux.SOCK.CLOEXEC, NETLINK_ROUTE));
        return .{ .fd = @intCast(rc) };
    }

    pub fn close(self: *Socket) void {
        _ = linux.close(self.fd);
    }

    pub const Link = struct { index: i32, up: bool };

    /// Look up interface `name`; dies with a clear message if it does not exist.
    pub fn link(self: *Socket, name: []const u8) Link {
        if (name.len == 0 or name.len >= 16) u.die("network", "bad interface name '{s}'", .{name});
        var m = Msg.init(RTM_GETLINK, NLM_F_REQUEST);
        m.put(IfInfoMsg{ .family = linux.AF.UNSPEC, .index = 0, .flags = 0, .change = 0 });
        var z: [16]u8 = [_]u8{0} ** 16; // IFLA_IFNAME is NUL-terminated
        @memcpy(z[0..name.len], name);
        m.attr(IFLA_IFNAME, z[0 .. name.len + 1]);
        return switch (self.transact(&m)) {
            .link => |l| l,
            .err => |e| if (e == .NODEV)
                u.die("network", "interface {s} not found", .{name})
            else
                u.die("network", "RTM_GETLINK {s}: {}", .{ name, u.errName(e) }),
            .ack => u.die("network", "RTM_GETLINK {s}: no link in reply", .{name}),
        };
    }

    pub fn linkUp(self: *Socket, name: []const u8, index: i32) void {
        var m = Msg.init(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.put(IfInfoMsg{ .family = linux.AF.UNSPEC, .index = index, .flags = IFF_UP, .change = IFF_UP });
        self.expectAck("link up", name, &m);
    }

    pub fn addAddr4(self: *Socket, name: []const u8, index: i32, addr: [4]u8, prefix: u8) void {
        var m = Msg.init(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.put(IfAddrMsg{ .family = linux.AF.INET, .prefixlen = prefix, .scope = RT_SCOPE_UNIVERSE, .index = @intCast(index) });
        m.attr(IFA_LOCAL, &addr);
        m.attr(IFA_ADDRESS, &addr);
        self.expectAck("add address", name, &m);
    }

    pub fn addDefaultRoute4(self: *Socket, name: []const u8, index: i32, gw: [4]u8) void {
        var m = Msg.init(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.put(RtMsg{
            .family = linux.AF.INET,
            .dst_len = 0,
            .table = RT_TABLE_MAIN,
            .protocol = RTPROT_BOOT,
            .scope = RT_SCOPE_UNIVERSE,
            .type = RTN_UNICAST,
        });
        m.attr(RTA_GATEWAY, &gw);
        m.attr(RTA_OIF, std.mem.asBytes(&index));
        self.expectAck("default route", name, &m);
    }

    fn expectAck(self: *Socket, what: []const u8, name: []const u8, m: *Msg) void {
        switch (self.transact(m)) {
            .ack => {},
            .err => |e| if (e == .PERM)
                // Typical cause: bwrap nested a user namespace (--dev / --disable-userns),
                // so our CAP_NET_ADMIN does not cover this network namespace.
                u.die("network", "{s} {s}: EPERM (no CAP_NET_ADMIN over this netns)", .{ what, name })
            else
                u.die("network", "{s} {s}: {}", .{ what, name, u.errName(e) }),
            .link => u.die("network", "{s} {s}: unexpected reply", .{ what, name }),
        }
    }

    const Reply = union(enum) { ack, link: Link, err: linux.E };

    /// Send one request and read until its reply (ack/error or a link message) arrives.
    fn transact(self: *Socket, m: *Msg) Reply {
        self.seq += 1;
        m.hdr().seq = self.seq;
        var kernel = linux.sockaddr.nl{ .groups = 0, .pid = 0 };
        const src = m.bytes();
        const sent = u.check("network: netlink send", linux.sendto(self.fd, src.ptr, src.len, 0, @ptrCast(&kernel), @sizeOf(@TypeOf(kernel))));
        if (sent != src.len) u.die("network", "netlink send: short write", .{});
        var buf: [16384]u8 align(4) = undefined;
        while (true) {
            const n = u.check("network: netlink recv", linux.recvfrom(self.fd, &buf, buf.len, 0, null, null));
            var off: usize = 0;
            while (off + @sizeOf(NlMsgHdr) <= n) {
                const h: *const NlMsgHdr = @ptrCast(@alignCast(&buf[off]));
                if (h.len < @sizeOf(NlMsgHdr) or off + h.len > n) u.die("network", "malformed netlink reply", .{});
                const payload = buf[off + @sizeOf(NlMsgHdr) .. off + h.len];
                off += std.mem.alignForward(usize, h.len, 4);
                if (h.seq != self.seq) continue; // stale/unrelated message
                if (h.type == NLMSG_ERROR) {
                    if (payload.len < @sizeOf(i32)) u.die("network", "short netlink error", .{});
                    const err = std.mem.readIntNative(i32, payload[0..4]);
                    if (err == 0) return .ack;
                    return .{ .err = @enumFromInt(@as(u16, @intCast(-err))) };
                }
                if (h.type == RTM_NEWLINK and payload.len >= @sizeOf(IfInfoMsg)) {
                    const info = std.mem.bytesToValue(IfInfoMsg, payload[0..@sizeOf(IfInfoMsg)]);
                    return .{ .link = .{ .index = info.index, .up = info.flags & IFF_UP != 0 } };
                }
            }
        }
    }
};

/// A request under construction in a fixed, 4-byte-aligned buffer.
const Msg = struct {
    buf: [256]u8 align(4) = undefined,
    len: usize = 0,

    fn init(msg_type: u16, flags: u16) Msg {
        var m = Msg{};
        m.put(NlMsgHdr{ .len = 0, .type = msg_type, .flags = flags, .seq = 0, .pid = 0 });
        return m;
    }
    fn hdr(self: *Msg) *NlMsgHdr {
        return @ptrCast(&self.buf);
    }
    fn raw(self: *Msg, data: []const u8) void {
        @memcpy(self.buf[self.len .. self.len + data.len], data);
        self.len += data.len;
        const pad = std.mem.alignForward(usize, self.len, 4);
        @memset(self.buf[self.len..pad], 0);
        self.len = pad;
        self.hdr().len = @intCast(self.len);
    }
    fn put(self: *Msg, v: anytype) void {
        self.raw(std.mem.asBytes(&v));
    }
    /// rtattr: u16 len (header + payload, unpadded), u16 type, payload.
    fn attr(self: *Msg, attr_type: u16, data: []const u8) void {
        const h = [2]u16{ @intCast(4 + data.len), attr_type };
        @memcpy(self.buf[self.len .. self.len + 4], std.mem.asBytes(&h));
        self.len += 4;
        self.raw(data);
    }
    fn bytes(self: *Msg) []const u8 {
        return self.buf[0..self.len];
    }
};

/// Parse "A.B.C.D" into network-order bytes.
pub fn parseIp4(step: []const u8, s: []const u8) [4]u8 {
    var out: [4]u8 = undefined;
    var it = std.mem.splitScalar(u8, s, '.');
    var i: usize = 0;
    while (it.next()) |part| : (i += 1) {
        if (i == 4 or part.len == 0 or part.len > 3) u.die(step, "invalid IPv4 address '{s}'", .{s});
        out[i] = std.fmt.parseInt(u8, part, 10) catch u.die(step, "invalid IPv4 address '{s}'", .{s});
    }
    if (i != 4) u.die(step, "invalid IPv4 address '{s}'", .{s});
    return out;
}

pub const Cidr4 = struct { addr: [4]u8, prefix: u8 };

/// Parse "A.B.C.D/P".
pub fn parseCidr4(step: []const u8, s: []const u8) Cidr4 {
    const slash = std.mem.indexOfScalar(u8, s, '/') orelse u.die(step, "expected A.B.C.D/P, got '{s}'", .{s});
    const prefix = std.fmt.parseInt(u8, s[slash + 1 ..], 10) catch u.die(step, "bad prefix in '{s}'", .{s});
    if (prefix > 32) u.die(step, "bad prefix in '{s}'", .{s});
    return .{ .addr = parseIp4(step, s[0..slash]), .prefix = prefix };
}
