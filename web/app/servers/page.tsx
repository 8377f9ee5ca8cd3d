"use client";

import { useEffect, useState, type FormEvent } from "react";
import { useSession } from "@/components/session";
import { Shell } from "@/components/shell";
import { Badge, Button, Card, Cell, ConfirmButton, Empty, ErrorBox, Field, inputClass, ListStates, Loading, Modal, Notice, Row, Table, TierBadge } from "@/components/ui";
import { api, ApiError, enc, errorMessage, formatBytes, formatDuration, formatTime, queryString, type Catalog, type CatalogEntry, type RunningSandbox, type Server } from "@/lib/api";
import { useLoad } from "@/lib/use-load";
import { useSubmit } from "@/lib/use-submit";

const RUNNING_REFRESH_MS = 5_000;

export default function ServersPage() {
  const { user } = useSession();
  const isAdmin = user?.role === "admin";
  const installed = useLoad(() => api<Server[]>("GET", "/servers"));
  const [notice, setNotice] = useState<string | null>(null);
  const [uninstallError, setUninstallError] = useState<string | null>(null);
  const [catalogVersion, setCatalogVersion] = useState(0);
  const changed = async (message: string) => {
    setNotice(message);
    setUninstallError(null);
    setCatalogVersion((version) => version + 1);
    await installed.reload();
  };
  return (
    <Shell title="Servers">
      <p className="text-sm text-slate-600">
        Servers come from the signed registry. Each one runs in its own sandbox per user and reaches only the domains it declares.
      </p>
      {notice ? <Notice testId="servers-notice">{notice}</Notice> : null}
      <CatalogBrowser isAdmin={isAdmin} version={catalogVersion} onInstalled={(name) => changed(`Installed ${name}. Add it to a profile to use it.`)} />
      <Card title="Installed servers" testId="installed-card">
        <ListStates state={installed} name="installed" empty="No servers yet: install one from the catalog above." />
        {uninstallError ? <ErrorBox message={uninstallError} testId="uninstall-error" /> : null}
        {installed.data && installed.data.length > 0 ? (
          <Table label="Installed servers" testId="installed-table" columns={["Server", "Tier", "Egress", "Credentials", "Source", isAdmin ? <span className="sr-only">Actions</span> : null]}>
            {installed.data.map((server) => (
              <Row key={server.name} testId={`installed-${server.name}`}>
                <Cell className="font-medium">{server.name}</Cell>
                <Cell>
                  <TierBadge tier={server.tier} />
                </Cell>
                <Cell className="text-xs">{Array.isArray(server.egress) && server.egress.length ? server.egress.join(", ") : "none"}</Cell>
                <Cell className="text-xs">{server.credentials.length ? server.credentials.map((c) => `${c.id} (${c.type})`).join(", ") : "none"}</Cell>
                <Cell className="break-all text-xs text-slate-500">{server.installed ? server.installed.reference : `${server.kind}, configured`}</Cell>
                <Cell className="text-right">
                  {isAdmin && server.installed ? (
                    <ConfirmButton
                      label="Uninstall"
                      testId={`uninstall-${server.name}`}
                      ariaLabel={`Uninstall ${server.name}`}
                      title={`Uninstall ${server.name}?`}
                      description="Profiles lose this server and its running sandboxes stop. Credentials set for it stay until deleted."
                      confirmLabel="Uninstall"
                      onConfirm={async () => {
                        try {
                          await api("DELETE", `/servers/${enc(server.name)}`);
                          await changed(`Uninstalled ${server.name}.`);
                        } catch (caught) {
                          setNotice(null);
                          setUninstallError(`Could not uninstall ${server.name}: ${errorMessage(caught)}`);
                        }
                      }}
                    />
                  ) : null}
                </Cell>
              </Row>
            ))}
          </Table>
        ) : null}
      </Card>
      <RunningSandboxes isAdmin={isAdmin} />
    </Shell>
  );
}

type CatalogState = Catalog | { unconfigured: string };

function CatalogBrowser({ isAdmin, version, onInstalled }: { isAdmin: boolean; version: number; onInstalled(name: string): Promise<void> }) {
  const [search, setSearch] = useState("");
  const [query, setQuery] = useState("");
  const [category, setCategory] = useState("");
  const [selected, setSelected] = useState<CatalogEntry | null>(null);
  // Typing settles for a moment before the catalog is asked again.
  useEffect(() => {
    const timer = setTimeout(() => setQuery(search.trim()), 300);
    return () => clearTimeout(timer);
  }, [search]);
  const catalog = useLoad<CatalogState>(async () => {
    try {
      return await api<Catalog>("GET", `/catalog${queryString({ q: query, category })}`);
    } catch (caught) {
      if (caught instanceof ApiError && caught.code === "registry_unconfigured") return { unconfigured: caught.message };
      throw caught;
    }
  }, [query, category, version]);
  const data = catalog.data;

  if (data && "unconfigured" in data) {
    return (
      <Card title="Catalog" testId="catalog-card">
        <Empty testId="catalog-unconfigured">
          No registry is configured, so there is no catalog to browse. An operator sets GIG_REGISTRY_URL (the signed index) and GIG_REGISTRY_PUBKEY (its signing key) and restarts the gateway.
          <span className="mt-2 block text-xs">({data.unconfigured})</span>
        </Empty>
      </Card>
    );
  }
  return (
    <Card title="Catalog" testId="catalog-card">
      <form className="mb-3 grid gap-3 sm:grid-cols-[1fr_14rem]" role="search" onSubmit={(event: FormEvent) => event.preventDefault()}>
        <Field label="Search" htmlFor="catalog-search">
          <input id="catalog-search" data-testid="catalog-search" type="search" className={inputClass} placeholder="name, description or tool" value={search} onChange={(event) => setSearch(event.target.value)} />
        </Field>
        <Field label="Category" htmlFor="catalog-category">
          <select id="catalog-category" data-testid="catalog-category" className={inputClass} value={category} onChange={(event) => setCategory(event.target.value)}>
            <option value="">All categories</option>
            {(data?.categories ?? (category ? [category] : [])).map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </Field>
      </form>
      {!isAdmin ? <p className="mb-3 text-xs text-slate-500" data-testid="catalog-admins-install">Only admins install servers; ask one to install what you need.</p> : null}
      {catalog.loading && !data ? <Loading label="Loading the catalog…" /> : null}
      {catalog.error ? <ErrorBox message={catalog.error} testId="catalog-error" /> : null}
      {data && data.servers.length === 0 ? <Empty testId="catalog-empty">No server matches this search.</Empty> : null}
      <ul className="grid gap-3 sm:grid-cols-2" data-testid="catalog-list" aria-busy={catalog.loading}>
        {data?.servers.map((entry) => (
          <li key={entry.name} data-testid={`catalog-${entry.name}`} className="flex flex-col gap-2 rounded-md border border-slate-200 p-3">
            <div className="flex flex-wrap items-center gap-2">
              <span className="font-semibold">{entry.displayName ?? entry.name}</span>
              <span className="text-xs text-slate-500">
                {entry.name} {entry.version}
              </span>
              <TierBadge tier={entry.tier} />
              {entry.category ? <Badge tone="slate">{entry.category}</Badge> : null}
              {entry.installed ? (
                <Badge tone="indigo" testId="catalog-installed">
                  installed{entry.installed.version ? ` ${entry.installed.version}` : ""}
                </Badge>
              ) : null}
            </div>
            {entry.description ? <p className="text-sm text-slate-700">{entry.description}</p> : null}
            <dl className="grid grid-cols-[auto_1fr] gap-x-2 text-xs text-slate-600">
              <dt className="font-medium">Egress</dt>
              <dd className="break-all">{entry.egress.length ? entry.egress.join(", ") : "none"}</dd>
              <dt className="font-medium">Credentials</dt>
              <dd>{entry.credentials.length ? entry.credentials.map((c) => `${c.vendor ?? c.id} ${c.type}`).join(", ") : "none"}</dd>
              <dt className="font-medium">Tools</dt>
              <dd>{entry.tools}</dd>
            </dl>
            {entry.problem ? <p className="text-xs text-amber-700">Cannot be installed here: {entry.problem}</p> : null}
            {isAdmin && entry.installable && !entry.installed ? (
              <div>
                <Button data-testid={`install-${entry.name}`} aria-label={`Install ${entry.displayName ?? entry.name}`} onClick={() => setSelected(entry)}>
                  Install…
                </Button>
              </div>
            ) : null}
          </li>
        ))}
      </ul>
      {selected ? (
        <InstallDialog
          entry={selected}
          onClose={() => setSelected(null)}
          onInstalled={async () => {
            const name = selected.name;
            setSelected(null);
            await onInstalled(name);
          }}
        />
      ) : null}
    </Card>
  );
}

/** Shows what installing grants (egress and credentials) and installs only after an explicit consent. */
function InstallDialog({ entry, onClose, onInstalled }: { entry: CatalogEntry; onClose(): void; onInstalled(): Promise<void> }) {
  const label = entry.displayName ?? entry.name;
  const [consent, setConsent] = useState(false);
  const { busy, error, run } = useSubmit();
  async function install(event: FormEvent) {
    event.preventDefault();
    if (!consent) return;
    await run(async () => {
      await api("POST", "/servers", { reference: entry.name, consent: true });
      await onInstalled();
    });
  }
  return (
    <Modal open onOpenChange={(open) => (open ? undefined : onClose())} title={`Install ${label} ${entry.version}?`} description="Review what this server is allowed to do before installing it." testId="install-dialog">
      <form onSubmit={install} className="space-y-4">
        <div className="space-y-1 text-sm">
          <p>
            Tier <TierBadge tier={entry.tier} />{" "}
            <span className="text-slate-600">{entry.tier === "sealed" ? "the server never sees credentials: the gateway injects them into its requests." : "the server receives the credentials it needs."}</span>
          </p>
        </div>
        <div>
          <h3 className="text-sm font-semibold">It may reach</h3>
          {entry.egress.length ? (
            <ul className="list-inside list-disc text-sm" data-testid="install-egress">
              {entry.egress.map((domain) => (
                <li key={domain} className="break-all font-mono text-xs">
                  {domain}
                </li>
              ))}
            </ul>
          ) : (
            <p className="text-sm text-slate-600" data-testid="install-egress">
              no network at all
            </p>
          )}
        </div>
        <div>
          <h3 className="text-sm font-semibold">It needs</h3>
          {entry.credentials.length ? (
            <ul className="list-inside list-disc text-sm" data-testid="install-credentials">
              {entry.credentials.map((credential) => (
                <li key={credential.id}>
                  {credential.vendor ?? credential.id} {credential.type} <span className="text-xs text-slate-500">({credential.id}, set per user on the Credentials page)</span>
                </li>
              ))}
            </ul>
          ) : (
            <p className="text-sm text-slate-600" data-testid="install-credentials">
              no credentials
            </p>
          )}
        </div>
        <label className="flex items-start gap-2 text-sm">
          <input type="checkbox" data-testid="install-consent" className="mt-1 h-4 w-4 rounded border-slate-300 focus-visible:ring-2 focus-visible:ring-indigo-500" checked={consent} onChange={(event) => setConsent(event.target.checked)} />
          I allow {label} to reach these domains and use these credentials.
        </label>
        {error ? <ErrorBox message={error} testId="install-error" /> : null}
        <div className="flex flex-wrap justify-end gap-2">
          <Button variant="secondary" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" disabled={!consent || busy} data-testid="install-confirm">
            {busy ? "Installing…" : "Install"}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

function RunningSandboxes({ isAdmin }: { isAdmin: boolean }) {
  const running = useLoad(() => api<RunningSandbox[]>("GET", "/servers/running"));
  const { reload } = running;
  useEffect(() => {
    const timer = setInterval(() => void reload(), RUNNING_REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);
  return (
    <Card title="Running sandboxes" testId="running-card" actions={<span className="text-xs text-slate-500">refreshes every {RUNNING_REFRESH_MS / 1000} s</span>}>
      <ListStates state={running} name="running" empty={isAdmin ? "No sandbox is running: servers start on their first call." : "None of your sandboxes is running: servers start on their first call."} />
      {running.data && running.data.length > 0 ? (
        <Table label="Running sandboxes" testId="running-table" columns={["Server", "Status", "Uptime", "Memory", "PID", "Started", "Tenant"]}>
          {running.data.map((sandbox) => (
            <Row key={`${sandbox.server}/${sandbox.tenantId}/${sandbox.pid}`} testId={`running-${sandbox.server}`}>
              <Cell className="font-medium">{sandbox.server}</Cell>
              <Cell>
                <Badge tone="green">running</Badge>
              </Cell>
              <Cell className="whitespace-nowrap">{formatDuration(sandbox.uptimeSeconds)}</Cell>
              <Cell className="whitespace-nowrap">{sandbox.memoryBytes == null ? "—" : formatBytes(sandbox.memoryBytes)}</Cell>
              <Cell className="font-mono text-xs">{sandbox.pid}</Cell>
              <Cell className="whitespace-nowrap text-xs text-slate-500">{formatTime(sandbox.startedAt)}</Cell>
              <Cell className="font-mono text-xs">
                <span title={sandbox.tenantId}>{sandbox.tenantId.slice(0, 8)}</span>
              </Cell>
            </Row>
          ))}
        </Table>
      ) : null}
    </Card>
  );
}
