/**
 * The few rtnetlink (NETLINK_ROUTE) operations the network manager needs,
 * spoken directly to the kernel over a netlink socket through libc, so the
 * gateway neither depends on nor shells out to iproute2. Messages are built
 * by hand: netlink header, a family header, then 4-byte aligned attributes.
 * Every call is synchronous: the kernel answers these requests immediately.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { isIPv4 } from "node:net";
import { getSystemErrorName } from "node:util";

const AF_NETLINK = 16;
const AF_INET = 2;
const SOCK_RAW = 3;
/** Sandboxes and other children must not inherit the gateway's netlink socket. */
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_PEEK = 2;
const MSG_TRUNC = 0x20;

const EPERM = 1;
const EINTR = 4;
const EAGAIN = 11;
const EACCES = 13;
const ENODEV = 19;

const NLMSG_HEADER_SIZE = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP_INTR = 0x10;
const NLM_F_DUMP = 0x300;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
/** Flags of an ack: the request was not echoed back / extended-ack attributes follow. */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const IFINFOMSG_SIZE = 16;
const IFADDRMSG_SIZE = 8;
const IFLA_IFNAME = 3;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_PID = 19;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFF_UP = 0x1;
const NLA_HEADER_SIZE = 4;
const NLA_F_NESTED = 0x8000;

/** A request the kernel has not answered within this time is reported instead of hanging the gateway. */
const RECEIVE_TIMEOUT_SECONDS = 5;
/** Large enough for any single netlink datagram the kernel sends for a dump (it caps them at 32 KiB). */
const INITIAL_RECEIVE_BUFFER = 64 * 1024;
/** A dump that raced with a link change is flagged by the kernel; it is simply asked again. */
const DUMP_ATTEMPTS = 5;
const IFNAMSIZ = 16;

/** A failed rtnetlink operation: `errno` is the kernel's answer, the message names the operation. */
export class RtnetlinkError extends Error {
  override name = "RtnetlinkError";

  constructor(
    operation: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${operation}: ${describeErrno(errno)}${detail ? ` — ${detail}` : ""}${hintFor(errno)}`);
  }
}

export function isNoSuchDevice(error: unknown): boolean {
  return error instanceof RtnetlinkError && error.errno === ENODEV;
}

let libcSymbols: ReturnType<typeof loadLibc> | undefined;

function loadLibc() {
  return dlopen("libc.so.6", {
    socket: { args: ["i32", "i32", "i32"], returns: "i32" },
    bind: { args: ["i32", "buffer", "buffer_length"], returns: "i32" },
    setsockopt: { args: ["i32", "i32", "i32", "buffer", "buffer_length"], returns: "i32" },
    // ssize_t results come back as plain numbers: no BigInt allocated between the call and reading errno.
    send: { args: ["i32", "buffer", "buffer_length", "i32"], returns: FFIType.i64_fast },
    recv: { args: ["i32", "buffer", "buffer_length", "i32"], returns: FFIType.i64_fast },
    close: { args: ["i32"], returns: "i32" },
    if_nametoindex: { args: ["cstring"], returns: "u32" },
    strerror: { args: ["i32"], returns: "cstring" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
}

/** libc is opened on first use, so merely importing this module has no native side effects. */
function libc() {
  libcSymbols ??= loadLibc();
  return libcSymbols;
}

/** errno of the libc call that just failed; read before anything else can overwrite it. */
function lastErrno(): number {
  return read.i32(libc().__errno_location() as Pointer);
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

function describeErrno(errno: number): string {
  return `${errnoName(errno)} (${libc().strerror(errno) ?? "unknown error"})`;
}

function hintFor(errno: number): string {
  return errno === EPERM || errno === EACCES ? " — the gateway needs CAP_NET_ADMIN (run it as root)" : "";
}

function checkInterfaceName(name: string): void {
  if (name.length === 0 || Buffer.byteLength(name) >= IFNAMSIZ || /[\s/:\0]/.test(name)) {
    throw new Error(`invalid interface name ${JSON.stringify(name)}: use 1-15 characters without spaces, '/' or ':'`);
  }
}

function ipv4Bytes(address: string): Uint8Array {
  if (!isIPv4(address)) throw new Error(`invalid IPv4 address ${JSON.stringify(address)}`);
  return Uint8Array.from(address.split(".").map(Number));
}

/** Builds one netlink request; the length and sequence number are filled in by `finish`. */
class RequestBuilder {
  private bytes = new Uint8Array(256);
  private view = new DataView(this.bytes.buffer);
  private length = 0;

  constructor(type: number, flags: number) {
    const at = this.reserve(NLMSG_HEADER_SIZE);
    this.view.setUint16(at + 4, type, true);
    this.view.setUint16(at + 6, flags, true);
  }

  /** struct ifinfomsg: family, type, index, flags, change. */
  linkHeader(flags = 0, change = 0): this {
    const at = this.reserve(IFINFOMSG_SIZE);
    this.view.setUint32(at + 8, flags, true);
    this.view.setUint32(at + 12, change, true);
    return this;
  }

  /** struct ifaddrmsg: family, prefix length, flags, scope, interface index. */
  addressHeader(prefixLength: number, index: number): this {
    const at = this.reserve(IFADDRMSG_SIZE);
    this.bytes[at] = AF_INET;
    this.bytes[at + 1] = prefixLength;
    this.view.setUint32(at + 4, index, true);
    return this;
  }

  attribute(type: number, payload: Uint8Array): this {
    const at = this.reserve(NLA_HEADER_SIZE + payload.length);
    this.view.setUint16(at, NLA_HEADER_SIZE + payload.length, true);
    this.view.setUint16(at + 2, type, true);
    this.bytes.set(payload, at + NLA_HEADER_SIZE);
    this.align();
    return this;
  }

  /** A NUL-terminated string, as the kernel expects for interface names. */
  string(type: number, text: string): this {
    return this.attribute(type, new TextEncoder().encode(`${text}\0`));
  }

  u32(type: number, value: number): this {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, value, true);
    return this.attribute(type, payload);
  }

  /** An attribute whose payload is whatever `build` appends; `nested` marks it as a list of attributes. */
  nest(type: number, build: () => void, nested = true): this {
    const at = this.reserve(NLA_HEADER_SIZE);
    build();
    this.view.setUint16(at, this.length - at, true);
    this.view.setUint16(at + 2, nested ? type | NLA_F_NESTED : type, true);
    return this;
  }

  finish(sequence: number): Uint8Array {
    this.view.setUint32(0, this.length, true);
    this.view.setUint32(8, sequence, true);
    return this.bytes.slice(0, this.length);
  }

  private align(): void {
    this.reserve((4 - (this.length % 4)) % 4);
  }

  /** Appends `size` zero bytes and returns where they start. */
  private reserve(size: number): number {
    if (this.length + size > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + size));
      grown.set(this.bytes);
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += size;
    return at;
  }
}

interface Reply {
  type: number;
  flags: number;
  /** The whole message, header included. */
  view: DataView;
}

/** Walks the attributes in view[offset, end) and returns type → payload (the last one wins). */
function parseAttributes(view: DataView, offset: number, end: number): Map<number, DataView> {
  const attributes = new Map<number, DataView>();
  while (offset + NLA_HEADER_SIZE <= end) {
    const length = view.getUint16(offset, true);
    if (length < NLA_HEADER_SIZE || offset + length > end) break;
    const type = view.getUint16(offset + 2, true) & ~NLA_F_NESTED;
    attributes.set(type, new DataView(view.buffer, view.byteOffset + offset + NLA_HEADER_SIZE, length - NLA_HEADER_SIZE));
    offset += (length + 3) & ~3;
  }
  return attributes;
}

function readString(payload: DataView): string {
  const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** The kernel's own explanation from an extended ack, if it sent one. */
function extendedAckMessage(reply: Reply): string | undefined {
  if (!(reply.flags & NLM_F_ACK_TLVS)) return undefined;
  // An error ack embeds (the header of) the failed request before the attributes; NLMSG_DONE does not.
  let start = NLMSG_HEADER_SIZE + 4;
  if (reply.type === NLMSG_ERROR) {
    const requestLength = reply.flags & NLM_F_CAPPED ? NLMSG_HEADER_SIZE : reply.view.getUint32(start, true);
    start += (requestLength + 3) & ~3;
  }
  const message = parseAttributes(reply.view, start, reply.view.byteLength).get(NLMSGERR_ATTR_MSG);
  return message ? readString(message) : undefined;
}

/**
 * One NETLINK_ROUTE socket. Requests carry increasing sequence numbers and
 * only replies with the current number are considered, so a reply left over
 * from an earlier failed exchange can never be mistaken for the current one.
 */
export class RouteSocket {
  private sequence = 0;
  private buffer = new Uint8Array(INITIAL_RECEIVE_BUFFER);
  private closed = false;

  private constructor(private readonly fd: number) {}

  static open(): RouteSocket {
    const fd = libc().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new RtnetlinkError("open netlink socket", lastErrno());
    const socket = new RouteSocket(fd);
    try {
      socket.configure();
    } catch (error) {
      socket.close();
      throw error;
    }
    return socket;
  }

  /** Creates a veth pair: `hostName` here, `peerName` directly inside the network namespace of `peerPid`. */
  createVethPair(hostName: string, peerName: string, peerPid: number): void {
    checkInterfaceName(hostName);
    checkInterfaceName(peerName);
    const request = new RequestBuilder(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
      .linkHeader()
      .string(IFLA_IFNAME, hostName);
    request.nest(IFLA_LINKINFO, () => {
      request.attribute(IFLA_INFO_KIND, new TextEncoder().encode("veth"));
      request.nest(IFLA_INFO_DATA, () => {
        // The peer is described by its own ifinfomsg followed by attributes, so it is not a plain nest.
        request.nest(VETH_INFO_PEER, () => {
          request.linkHeader().string(IFLA_IFNAME, peerName).u32(IFLA_NET_NS_PID, peerPid);
        }, false);
      });
    });
    this.transact(`create veth ${hostName} (peer ${peerName} in the netns of pid ${peerPid})`, request);
  }

  addIPv4Address(name: string, address: string, prefixLength: number): void {
    const operation = `add address ${address}/${prefixLength} to ${name}`;
    const local = ipv4Bytes(address);
    const request = new RequestBuilder(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
      .addressHeader(prefixLength, this.indexOf(name, operation))
      .attribute(IFA_LOCAL, local)
      .attribute(IFA_ADDRESS, local);
    this.transact(operation, request);
  }

  setLinkUp(name: string): void {
    checkInterfaceName(name);
    const request = new RequestBuilder(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK).linkHeader(IFF_UP, IFF_UP).string(IFLA_IFNAME, name);
    this.transact(`set ${name} up`, request);
  }

  /** Deleting one end of a veth pair removes both. Throws RtnetlinkError ENODEV if there is no such link. */
  deleteLink(name: string): void {
    checkInterfaceName(name);
    const request = new RequestBuilder(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK).linkHeader().string(IFLA_IFNAME, name);
    this.transact(`delete link ${name}`, request);
  }

  /** Names of every link in this socket's network namespace. */
  listLinkNames(): string[] {
    for (let attempt = 1; ; attempt++) {
      const names: string[] = [];
      let interrupted = false;
      const request = new RequestBuilder(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP).linkHeader();
      this.exchange("list links", request, NLMSG_DONE, (reply) => {
        if (reply.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (reply.type !== RTM_NEWLINK) return;
        const name = parseAttributes(reply.view, NLMSG_HEADER_SIZE + IFINFOMSG_SIZE, reply.view.byteLength).get(IFLA_IFNAME);
        if (name) names.push(readString(name));
      });
      if (!interrupted || attempt === DUMP_ATTEMPTS) return names;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Not retried on EINTR: Linux releases the descriptor even then.
    libc().close(this.fd);
  }

  private configure(): void {
    const enable = new Uint8Array(Uint32Array.of(1).buffer);
    // Acks without a copy of the request, and with the kernel's own error text when it has one.
    for (const option of [NETLINK_CAP_ACK, NETLINK_EXT_ACK]) {
      if (libc().setsockopt(this.fd, SOL_NETLINK, option, enable, enable) < 0) {
        throw new RtnetlinkError("configure netlink socket", lastErrno());
      }
    }
    const timeout = new Uint8Array(new BigInt64Array([BigInt(RECEIVE_TIMEOUT_SECONDS), 0n]).buffer);
    if (libc().setsockopt(this.fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout) < 0) {
      throw new RtnetlinkError("configure netlink socket", lastErrno());
    }
    // struct sockaddr_nl with pid 0: the kernel assigns this socket's port id.
    const address = new Uint8Array(12);
    new DataView(address.buffer).setUint16(0, AF_NETLINK, true);
    if (libc().bind(this.fd, address, address) < 0) throw new RtnetlinkError("bind netlink socket", lastErrno());
  }

  private indexOf(name: string, operation: string): number {
    checkInterfaceName(name);
    const index = libc().if_nametoindex(name);
    if (index === 0) throw new RtnetlinkError(operation, lastErrno());
    return index;
  }

  /** Sends a request that expects only an ack; throws the kernel's error if it refused. */
  private transact(operation: string, request: RequestBuilder): void {
    this.exchange(operation, request, NLMSG_ERROR, () => {});
  }

  /**
   * Sends `request` and hands each reply to `onReply` up to the message of
   * type `last` (the ack of a plain request, NLMSG_DONE of a dump). An error
   * reply throws. Replies live in the shared receive buffer: `onReply` must
   * copy out what it keeps.
   */
  private exchange(operation: string, request: RequestBuilder, last: number, onReply: (reply: Reply) => void): void {
    if (this.closed) throw new Error(`${operation}: the netlink socket is closed`);
    this.sequence = (this.sequence + 1) >>> 0;
    const sequence = this.sequence;
    this.send(operation, request.finish(sequence));
    for (;;) {
      const datagram = this.receive(operation);
      for (let offset = 0; offset + NLMSG_HEADER_SIZE <= datagram.byteLength; ) {
        const length = datagram.getUint32(offset, true);
        if (length < NLMSG_HEADER_SIZE || offset + length > datagram.byteLength) {
          throw new Error(`${operation}: malformed netlink reply from the kernel`);
        }
        const reply: Reply = {
          type: datagram.getUint16(offset + 4, true),
          flags: datagram.getUint16(offset + 6, true),
          view: new DataView(datagram.buffer, datagram.byteOffset + offset, length),
        };
        const replySequence = datagram.getUint32(offset + 8, true);
        offset += (length + 3) & ~3;
        if (replySequence !== sequence) continue;
        if (reply.type === NLMSG_ERROR || reply.type === NLMSG_DONE) {
          // Both carry a negative errno (0 for success) right after the header.
          const error = length >= NLMSG_HEADER_SIZE + 4 ? -reply.view.getInt32(NLMSG_HEADER_SIZE, true) : 0;
          if (error !== 0) throw new RtnetlinkError(operation, error, extendedAckMessage(reply));
        }
        onReply(reply);
        if (reply.type === last) return;
      }
    }
  }

  private send(operation: string, message: Uint8Array): void {
    for (;;) {
      const sent = Number(libc().send(this.fd, message, message, 0));
      if (sent === message.length) return;
      if (sent >= 0) throw new Error(`${operation}: the kernel accepted only ${sent} of ${message.length} bytes`);
      const errno = lastErrno();
      if (errno !== EINTR) throw new RtnetlinkError(operation, errno);
    }
  }

  /**
   * Receives one datagram. It is peeked at first with MSG_TRUNC, which reports
   * its full size, so the buffer can grow instead of the kernel cutting it off.
   */
  private receive(operation: string): DataView {
    for (;;) {
      const size = Number(libc().recv(this.fd, this.buffer, this.buffer, MSG_PEEK | MSG_TRUNC));
      if (size < 0) {
        const errno = lastErrno();
        if (errno === EINTR) continue;
        if (errno === EAGAIN) throw new Error(`${operation}: the kernel did not answer within ${RECEIVE_TIMEOUT_SECONDS} s`);
        throw new RtnetlinkError(operation, errno);
      }
      if (size > this.buffer.length) {
        this.buffer = new Uint8Array(size);
        continue;
      }
      const received = Number(libc().recv(this.fd, this.buffer, this.buffer, 0));
      if (received < 0) {
        const errno = lastErrno();
        if (errno === EINTR) continue;
        throw new RtnetlinkError(operation, errno);
      }
      return new DataView(this.buffer.buffer, 0, received);
    }
  }
}
