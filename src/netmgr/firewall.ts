/**
 * The sandboxes' firewall: one nftables table, `inet gigmcp`, owned entirely
 * by the gateway and driven through libnftables in-process (no `nft` binary).
 *
 * Traffic arriving on a sandbox link (`gig*`) is accepted only when its
 * (interface, source, destination, TCP port) tuple is in the `allowed_flows`
 * set: one element per sandbox, naming its own link, its own address and its
 * host-side address on the egress proxy port. Binding the tuple to the
 * interface is what stops a sandbox from spoofing another one's address.
 * Every packet of an allowed connection matches that tuple, so no separate
 * conntrack rule is needed — and a generic "ct state established accept"
 * would be unsafe here, as conntrack does not look at interfaces. Everything
 * else from a sandbox (other ports, UDP, ICMP, IPv6) is dropped, and nothing
 * is forwarded into or out of a sandbox link. Traffic on other interfaces is
 * left to the host's own firewall.
 */
import { dlopen, type Pointer } from "bun:ffi";
import { isIPv4 } from "node:net";
import * as v from "valibot";

const TABLE = "inet gigmcp";
const SET = "allowed_flows";
/** Links the network manager creates are named gig<slot>; the rules match them by this prefix. */
const SANDBOX_LINK_PATTERN = "gig*";
const SANDBOX_LINK_NAME = /^gig\d+$/;
const NFT_CTX_DEFAULT = 0;
const NFT_CTX_OUTPUT_JSON = 1 << 4;

/** One sandbox's permitted connection: from `sandboxAddress` on `hostIfname` to `hostAddress`:`port`. */
export interface AllowedFlow {
  hostIfname: string;
  sandboxAddress: string;
  hostAddress: string;
  port: number;
}

export type SandboxFlow = Omit<AllowedFlow, "port">;

/** The whole table, replaced in one transaction: "add" makes the "delete" valid if no table exists yet. */
function tableDefinition(): string {
  return `add table ${TABLE}
delete table ${TABLE}
table ${TABLE} {
  set ${SET} {
    type ifname . ipv4_addr . ipv4_addr . inet_service
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iifname "${SANDBOX_LINK_PATTERN}" jump from_sandbox
  }
  chain from_sandbox {
    iifname . ip saddr . ip daddr . tcp dport @${SET} accept
    drop
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname "${SANDBOX_LINK_PATTERN}" drop
    oifname "${SANDBOX_LINK_PATTERN}" drop
  }
}
`;
}

/** `nft -j list set`: a metainfo object, then the set with its elements (absent when empty). */
const listedSet = v.object({
  nftables: v.array(
    v.looseObject({
      set: v.optional(
        v.object({
          elem: v.optional(v.array(v.object({ concat: v.tuple([v.string(), v.string(), v.string(), v.number()]) }))),
        }),
      ),
    }),
  ),
});

function loadLibnftables() {
  try {
    return dlopen("libnftables.so.1", {
      nft_ctx_new: { args: ["u32"], returns: "ptr" },
      nft_ctx_free: { args: ["ptr"], returns: "void" },
      nft_ctx_buffer_output: { args: ["ptr"], returns: "i32" },
      nft_ctx_buffer_error: { args: ["ptr"], returns: "i32" },
      nft_ctx_output_get_flags: { args: ["ptr"], returns: "u32" },
      nft_ctx_output_set_flags: { args: ["ptr", "u32"], returns: "void" },
      nft_run_cmd_from_buffer: { args: ["ptr", "cstring"], returns: "i32" },
      nft_ctx_get_output_buffer: { args: ["ptr"], returns: "cstring" },
      nft_ctx_get_error_buffer: { args: ["ptr"], returns: "cstring" },
    }).symbols;
  } catch (error) {
    throw new Error(`cannot load libnftables.so.1 (${(error as Error).message}): install it with \`apt-get install libnftables1\``);
  }
}

let nftSymbols: ReturnType<typeof loadLibnftables> | undefined;

/** Loaded on first use, so a gateway running without sandboxes never needs the library. */
function libnftables() {
  nftSymbols ??= loadLibnftables();
  return nftSymbols;
}

function checkFlow(flow: AllowedFlow): void {
  // These values are spliced into nft commands: anything unexpected is refused, never quoted around.
  if (!SANDBOX_LINK_NAME.test(flow.hostIfname) || !isIPv4(flow.sandboxAddress) || !isIPv4(flow.hostAddress)) {
    throw new Error(`refusing firewall element for ${JSON.stringify(flow)}: expected a gig<N> link and IPv4 addresses`);
  }
  if (!Number.isInteger(flow.port) || flow.port < 1 || flow.port > 65535) {
    throw new Error(`refusing firewall element with port ${flow.port}: expected 1-65535`);
  }
}

function element(flow: AllowedFlow): string {
  checkFlow(flow);
  return `{ "${flow.hostIfname}" . ${flow.sandboxAddress} . ${flow.hostAddress} . ${flow.port} }`;
}

export class Firewall {
  private proxyPort: number | undefined;
  private context: Pointer | undefined;

  /** (Re)creates the table atomically, dropping whatever a previous run left in it. */
  install(proxyPort: number): void {
    this.run("install the sandbox firewall", tableDefinition());
    this.proxyPort = proxyPort;
  }

  /** Lets one sandbox reach the egress proxy. */
  allow(sandbox: SandboxFlow): void {
    this.run(`allow ${sandbox.hostIfname}`, `add element ${TABLE} ${SET} ${element(this.flow(sandbox))}`);
  }

  /** Withdraws a sandbox's permission; revoking one that is not there is not an error. */
  revoke(sandbox: SandboxFlow): void {
    const item = element(this.flow(sandbox));
    // nft 1.0.6 has no "destroy element": adding first makes the delete valid either way, in one transaction.
    this.run(`revoke ${sandbox.hostIfname}`, `add element ${TABLE} ${SET} ${item}\ndelete element ${TABLE} ${SET} ${item}`);
  }

  /** The set's elements as the kernel holds them. */
  listAllowed(): AllowedFlow[] {
    const symbols = libnftables();
    const context = this.openContext();
    const flags = symbols.nft_ctx_output_get_flags(context);
    symbols.nft_ctx_output_set_flags(context, flags | NFT_CTX_OUTPUT_JSON);
    let output: string;
    try {
      output = this.run("list the sandbox firewall", `list set ${TABLE} ${SET}`);
    } finally {
      symbols.nft_ctx_output_set_flags(context, flags);
    }
    const parsed = v.safeParse(listedSet, JSON.parse(output));
    if (!parsed.success) throw new Error(`unexpected nft JSON for set ${SET}: ${output.slice(0, 200)}`);
    return parsed.output.nftables.flatMap((entry) =>
      (entry.set?.elem ?? []).map(({ concat: [hostIfname, sandboxAddress, hostAddress, port] }) => ({ hostIfname, sandboxAddress, hostAddress, port })),
    );
  }

  /** Deletes the table (if present) and releases libnftables' resources. */
  remove(): void {
    try {
      this.run("remove the sandbox firewall", `add table ${TABLE}\ndelete table ${TABLE}`);
    } finally {
      this.proxyPort = undefined;
      if (this.context !== undefined) libnftables().nft_ctx_free(this.context);
      this.context = undefined;
    }
  }

  private flow(sandbox: SandboxFlow): AllowedFlow {
    if (this.proxyPort === undefined) throw new Error("the sandbox firewall is not installed: call install() first");
    return { ...sandbox, port: this.proxyPort };
  }

  /** One context for the firewall's lifetime; it keeps its own netlink socket open. */
  private openContext(): Pointer {
    if (this.context !== undefined) return this.context;
    const symbols = libnftables();
    const context = symbols.nft_ctx_new(NFT_CTX_DEFAULT) as Pointer | null;
    if (!context) throw new Error("nft_ctx_new failed: out of memory?");
    // Output and errors go to buffers we read, instead of the gateway's stdout/stderr.
    if (symbols.nft_ctx_buffer_output(context) !== 0 || symbols.nft_ctx_buffer_error(context) !== 0) {
      symbols.nft_ctx_free(context);
      throw new Error("libnftables could not buffer its output");
    }
    this.context = context;
    return context;
  }

  /** Runs nft commands as one transaction; returns their output or throws nft's error text. */
  private run(operation: string, commands: string): string {
    const symbols = libnftables();
    const context = this.openContext();
    const status = symbols.nft_run_cmd_from_buffer(context, commands);
    // Reading a buffer also empties it, so both are read every time.
    const output = symbols.nft_ctx_get_output_buffer(context) ?? "";
    const errors = symbols.nft_ctx_get_error_buffer(context) ?? "";
    if (status !== 0) {
      const hint = errors.includes("Operation not permitted") ? " — the gateway needs CAP_NET_ADMIN (run it as root)" : "";
      throw new Error(`${operation}: nftables refused: ${errors.trim() || `status ${status}`}${hint}`);
    }
    return output;
  }
}
