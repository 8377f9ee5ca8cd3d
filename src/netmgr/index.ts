/**
 * Networking of sandboxed backends. Each sandbox gets a veth pair with a /30
 * from the pool: gig<N> on the host, eth0 inside the sandbox's network
 * namespace (left down and unaddressed: the sandbox's init configures it).
 * The firewall lets a sandbox reach nothing but its host-side address on the
 * egress proxy port, and the proxy learns whose connection it holds from the
 * source address, through identify().
 */
import type { Logger } from "../log/index.ts";
import { Firewall, type AllowedFlow, type SandboxFlow } from "./firewall.ts";
import { AddressPool } from "./pool.ts";
import { isNoSuchDevice, RouteSocket } from "./rtnetlink.ts";

export type { AllowedFlow } from "./firewall.ts";
export { RtnetlinkError } from "./rtnetlink.ts";

/** The sandbox's end of the veth pair, as seen inside the sandbox. */
const SANDBOX_IFNAME = "eth0";
/** Every link with such a name belongs to the gateway; start() deletes them all. */
const SANDBOX_LINK_NAME = /^gig\d+$/;

/** Whose backend a sandbox runs. */
export interface SandboxIdentity {
  serverId: string;
  serverName: string;
  tenantId: string;
}

export interface SandboxNetwork {
  slot: number;
  hostIfname: string;
  hostAddress: string;
  sandboxAddress: string;
  prefixLength: number;
  /** Revokes the firewall element, deletes the link, forgets the identity, frees the slot. Safe to call twice. */
  release(): Promise<void>;
}

/**
 * A slot reserved before the sandbox exists (its number and addresses go into
 * the sandbox's configuration); `attach` wires it once the sandbox's pid is known.
 */
export interface NetworkLease extends SandboxNetwork {
  /** Creates the veth with eth0 inside the netns of `pid`, addresses and allows it; undone on failure. */
  attach(pid: number): Promise<void>;
}

export interface NetManagerOptions {
  /** IPv4 network the /30 of each sandbox is taken from, e.g. "10.88.0.0/16". */
  pool: string;
  /** Port of the egress proxy, the only one a sandbox may reach. */
  proxyPort: number;
  log: Logger;
}

export interface NetManager {
  /** Removes what a previous run left behind (gig* links, the firewall table) and installs the firewall. */
  start(): Promise<void>;
  /** Takes a slot for a sandbox about to start. */
  reserve(identity: SandboxIdentity): Promise<NetworkLease>;
  /** The sandbox a connection comes from, by its source address; only attached sandboxes are known. */
  identify(sourceIp: string): SandboxIdentity | undefined;
  /** The firewall's allowed flows as the kernel holds them (diagnostics and tests). */
  listAllowed(): Promise<AllowedFlow[]>;
  /** Releases every lease and removes the firewall table. */
  stop(): Promise<void>;
}

interface LeaseState {
  lease: NetworkLease;
  identity: SandboxIdentity;
  /** attach() got as far as creating the veth, so one may exist and release must clean up. */
  linked: boolean;
}

export function createNetManager(options: NetManagerOptions): NetManager {
  const pool = AddressPool.parse(options.pool);
  if (!Number.isInteger(options.proxyPort) || options.proxyPort < 1 || options.proxyPort > 65535) {
    throw new Error(`invalid egress proxy port ${options.proxyPort}: expected 1-65535`);
  }
  const { log } = options;
  const firewall = new Firewall();
  const leases = new Map<number, LeaseState>();
  const identities = new Map<string, SandboxIdentity>();
  let route: RouteSocket | undefined;

  function started(): RouteSocket {
    if (!route) throw new Error("the network manager is not started: call start() first");
    return route;
  }

  /** The live state of `lease`; compared by object, since a released slot may already serve another sandbox. */
  function stateOf(lease: NetworkLease): LeaseState | undefined {
    const state = leases.get(lease.slot);
    return state?.lease === lease ? state : undefined;
  }

  function deleteLinkIfPresent(socket: RouteSocket, name: string): void {
    try {
      socket.deleteLink(name);
    } catch (error) {
      // The link is gone already, e.g. taken down with the namespace of a sandbox that died.
      if (!isNoSuchDevice(error)) throw error;
    }
  }

  function flowOf(slot: SandboxFlow): SandboxFlow {
    return { hostIfname: slot.hostIfname, sandboxAddress: slot.sandboxAddress, hostAddress: slot.hostAddress };
  }

  async function start(): Promise<void> {
    if (route) throw new Error("the network manager is already started");
    const socket = RouteSocket.open();
    try {
      const leftovers = socket.listLinkNames().filter((name) => SANDBOX_LINK_NAME.test(name));
      for (const name of leftovers) deleteLinkIfPresent(socket, name);
      if (leftovers.length > 0) log.info("removed sandbox links left by a previous run", { links: leftovers });
      firewall.install(options.proxyPort);
    } catch (error) {
      socket.close();
      throw error;
    }
    route = socket;
  }

  async function reserve(identity: SandboxIdentity): Promise<NetworkLease> {
    started();
    const slot = pool.allocate();
    const lease: NetworkLease = { ...slot, attach: (pid) => attachLease(lease, pid), release: () => releaseLease(lease) };
    leases.set(slot.slot, { lease, identity: { serverId: identity.serverId, serverName: identity.serverName, tenantId: identity.tenantId }, linked: false });
    return lease;
  }

  async function attachLease(lease: NetworkLease, pid: number): Promise<void> {
    const state = stateOf(lease);
    if (!state) throw new Error(`cannot attach ${lease.hostIfname}: its lease was released`);
    if (state.linked) throw new Error(`cannot attach ${lease.hostIfname}: it is attached already`);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`cannot attach ${lease.hostIfname} to pid ${pid}: expected a process id`);
    const socket = started();
    // From here on a link may exist, even if creating it seems to fail (e.g. no answer in time).
    state.linked = true;
    try {
      socket.createVethPair(lease.hostIfname, SANDBOX_IFNAME, pid);
      socket.addIPv4Address(lease.hostIfname, lease.hostAddress, lease.prefixLength);
      socket.setLinkUp(lease.hostIfname);
      firewall.allow(flowOf(lease));
    } catch (error) {
      try {
        deleteLinkIfPresent(socket, lease.hostIfname);
        state.linked = false;
      } catch (undoError) {
        // Left marked as linked: release() tries again, and start() removes any gig<N> link.
        log.error("could not remove a half-attached sandbox link", { link: lease.hostIfname, error: undoError });
      }
      throw error;
    }
    // Known to identify() only now, but before the proxy can see a connection: nothing here yields to the event loop.
    identities.set(lease.sandboxAddress, state.identity);
    log.debug("sandbox network attached", { link: lease.hostIfname, address: lease.sandboxAddress, pid, ...state.identity });
  }

  async function releaseLease(lease: NetworkLease): Promise<void> {
    const state = stateOf(lease);
    if (!state) return;
    if (state.linked) {
      firewall.revoke(flowOf(lease));
      deleteLinkIfPresent(started(), lease.hostIfname);
      identities.delete(lease.sandboxAddress);
    }
    leases.delete(lease.slot);
    pool.release(lease.slot);
    log.debug("sandbox network released", { link: lease.hostIfname });
  }

  function identify(sourceIp: string): SandboxIdentity | undefined {
    // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6 addresses.
    const address = sourceIp.startsWith("::ffff:") ? sourceIp.slice("::ffff:".length) : sourceIp;
    const identity = identities.get(address);
    return identity && { ...identity };
  }

  async function listAllowed(): Promise<AllowedFlow[]> {
    started();
    return firewall.listAllowed();
  }

  async function stop(): Promise<void> {
    if (!route) return;
    const failures: unknown[] = [];
    for (const { lease } of [...leases.values()]) {
      await lease.release().catch((error: unknown) => failures.push(error));
    }
    try {
      firewall.remove();
    } catch (error) {
      failures.push(error);
    }
    // What could not be released is forgotten here; the next start() deletes leftover links.
    for (const slot of leases.keys()) pool.release(slot);
    leases.clear();
    identities.clear();
    route.close();
    route = undefined;
    if (failures.length > 0) {
      const details = failures.map((failure) => (failure instanceof Error ? failure.message : String(failure))).join("; ");
      throw new AggregateError(failures, `stopping the sandbox network: ${details}; the next start() removes leftover links`);
    }
  }

  return { start, reserve, identify, listAllowed, stop };
}

/** Brings `lo` up in the current network namespace (a fresh namespace starts with it down). */
export function bringUpLoopback(): void {
  const socket = RouteSocket.open();
  try {
    socket.setLinkUp("lo");
  } finally {
    socket.close();
  }
}
