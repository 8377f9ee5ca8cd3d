"use client";

import { useEffect, useState, type FormEvent } from "react";
import { Shell } from "@/components/shell";
import { useSession } from "@/components/session";
import { Badge, Button, Card, Cell, CodeBlock, ConfirmButton, ErrorBox, Field, inputClass, ListStates, Notice, Row, Table } from "@/components/ui";
import { api, enc, errorMessage, formatTime, type Connection, type OAuthApp } from "@/lib/api";
import { useLoad } from "@/lib/use-load";
import { useSubmit } from "@/lib/use-submit";

const POLL_MS = 2_000;

/** A connect flow in progress: which vendor, and its connection's last change before the flow began. */
interface Pending {
  vendor: string;
  updatedAt: number | null;
  /** Set when the browser refused to open a window: the user follows the link instead. */
  url: string | null;
  expiresAt: number;
}

export default function ConnectionsPage() {
  const { user } = useSession();
  const connections = useLoad(() => api<{ connections: Connection[] }>("GET", "/connections").then((body) => body.connections));
  const isAdmin = user?.role === "admin";
  return (
    <Shell title="Connections">
      <p className="text-sm text-slate-600">
        Connect your account at a vendor once: every server of that vendor then gets a fresh access token. Tokens stay sealed in the gateway and are never shown.
      </p>
      <ConnectionList connections={connections} isAdmin={isAdmin} />
      {isAdmin ? <OAuthApps connections={connections.data} onChanged={connections.reload} /> : null}
    </Shell>
  );
}

const STATUS_BADGES: Record<Connection["status"], { tone: "green" | "amber" | "slate"; label: string }> = {
  connected: { tone: "green", label: "connected" },
  needs_reconnect: { tone: "amber", label: "needs reconnect" },
  not_connected: { tone: "slate", label: "not connected" },
};

function ConnectionList({ connections, isAdmin }: { connections: ReturnType<typeof useLoad<Connection[]>>; isAdmin: boolean }) {
  const [pending, setPending] = useState<Pending | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const { reload, data } = connections;

  // While a flow is open in the other window, poll until the vendor's redirect stored the connection (or the flow expired).
  useEffect(() => {
    if (!pending) return;
    const timer = setInterval(() => {
      if (Date.now() > pending.expiresAt) {
        setPending(null);
        setError(`Connecting ${pending.vendor} took too long: start again.`);
        return;
      }
      void reload();
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [pending, reload]);

  useEffect(() => {
    if (!pending || !data) return;
    const current = data.find((connection) => connection.vendor === pending.vendor);
    if (current?.status === "connected" && current.updatedAt !== pending.updatedAt) {
      setPending(null);
      setNotice(`Connected ${pending.vendor}.`);
    }
  }, [pending, data]);

  async function connect(connection: Connection) {
    setError(null);
    setNotice(null);
    // Opened before the request, while the click still counts as a user gesture (else popup blockers refuse it).
    const opened = window.open("about:blank", "_blank");
    try {
      const started = await api<{ url: string; expiresAt: number }>("POST", `/connections/${enc(connection.vendor)}`);
      if (opened) {
        // The vendor's page gets no handle back on the dashboard.
        opened.opener = null;
        opened.location.href = started.url;
      }
      setPending({ vendor: connection.vendor, updatedAt: connection.updatedAt, url: opened ? null : started.url, expiresAt: started.expiresAt });
    } catch (caught) {
      opened?.close();
      setError(`Could not connect ${connection.vendor}: ${errorMessage(caught)}`);
    }
  }

  async function disconnect(connection: Connection) {
    setError(null);
    setNotice(null);
    try {
      await api("DELETE", `/connections/${enc(connection.vendor)}`);
      setNotice(`Disconnected ${connection.vendor}.`);
    } catch (caught) {
      setError(`Could not disconnect ${connection.vendor}: ${errorMessage(caught)}`);
    }
    await reload();
  }

  return (
    <Card title="Your connections" testId="connections-card">
      <ListStates state={connections} name="connections" empty="No installed server uses an OAuth vendor." />
      {error ? <ErrorBox message={error} testId="connection-error" /> : null}
      {notice ? <Notice testId="connection-notice">{notice}</Notice> : null}
      {pending ? (
        <div role="status" data-testid="connection-pending" className="space-y-2 rounded-md border border-indigo-200 bg-indigo-50 px-3 py-2 text-sm text-indigo-900">
          <p>
            {pending.url ? (
              <>
                Your browser did not open a window:{" "}
                <a href={pending.url} target="_blank" rel="noopener noreferrer" className="font-medium underline" data-testid="connection-link">
                  open {pending.vendor}&apos;s consent page
                </a>
                .
              </>
            ) : (
              <>Finish connecting {pending.vendor} in the window that opened; this page notices when you are done.</>
            )}
          </p>
          <div className="flex flex-wrap gap-2">
            <Button variant="secondary" data-testid="connection-refresh" onClick={() => void reload()}>
              Done, refresh
            </Button>
            <Button variant="secondary" onClick={() => setPending(null)}>
              Stop waiting
            </Button>
          </div>
        </div>
      ) : null}
      {data && data.length > 0 ? (
        <Table label="Connections" testId="connections-table" columns={["Vendor", "Status", "Scopes", "Expires", "Servers", <span key="actions" className="sr-only">Actions</span>]}>
          {data.map((connection) => {
            const badge = STATUS_BADGES[connection.status];
            return (
              <Row key={connection.vendor} testId={`connection-${connection.vendor}`}>
                <Cell className="font-medium">{connection.vendor}</Cell>
                <Cell>
                  <Badge tone={badge.tone} testId="connection-status">
                    {badge.label}
                  </Badge>
                  {connection.problem ? (
                    <p data-testid="connection-problem" className="mt-1 max-w-xs text-xs text-amber-800">
                      {connection.problem}
                    </p>
                  ) : null}
                </Cell>
                <Cell className="text-xs">{connection.scopes.length ? connection.scopes.join(" ") : <span className="text-slate-400">—</span>}</Cell>
                <Cell className="whitespace-nowrap text-xs text-slate-500">{connection.expiresAt ? formatTime(connection.expiresAt) : "—"}</Cell>
                <Cell className="text-xs">{connection.servers.join(", ")}</Cell>
                <Cell className="text-right">
                  <ConnectionActions connection={connection} isAdmin={isAdmin} busy={pending?.vendor === connection.vendor} onConnect={connect} onDisconnect={disconnect} />
                </Cell>
              </Row>
            );
          })}
        </Table>
      ) : null}
    </Card>
  );
}

function ConnectionActions({
  connection,
  isAdmin,
  busy,
  onConnect,
  onDisconnect,
}: {
  connection: Connection;
  isAdmin: boolean;
  busy: boolean;
  onConnect(connection: Connection): Promise<void>;
  onDisconnect(connection: Connection): Promise<void>;
}) {
  if (!connection.appConfigured && connection.status === "not_connected") {
    return (
      <p data-testid="connection-no-app" className="text-left text-xs text-slate-600">
        No OAuth app is set up for {connection.vendor}.{" "}
        {isAdmin ? (
          <a href="#oauth-apps" className="font-medium text-indigo-700 underline">
            Set one up below
          </a>
        ) : (
          "Ask an administrator to set one up."
        )}
      </p>
    );
  }
  return (
    <div className="flex flex-wrap justify-end gap-2">
      {connection.status === "connected" ? null : (
        <Button data-testid={`connect-${connection.vendor}`} disabled={busy || !connection.appConfigured} onClick={() => void onConnect(connection)}>
          {connection.status === "needs_reconnect" ? "Reconnect" : "Connect"}
        </Button>
      )}
      {connection.status === "not_connected" ? null : (
        <ConfirmButton
          label="Disconnect"
          testId={`disconnect-${connection.vendor}`}
          ariaLabel={`Disconnect ${connection.vendor}`}
          title={`Disconnect ${connection.vendor}?`}
          description={`Your tokens for ${connection.vendor} are deleted; its servers (${connection.servers.join(", ")}) fail until you connect again.`}
          confirmLabel="Disconnect"
          onConfirm={() => onDisconnect(connection)}
        />
      )}
    </div>
  );
}

function OAuthApps({ connections, onChanged }: { connections: Connection[] | null; onChanged: () => Promise<void> }) {
  const apps = useLoad(() => api<{ apps: OAuthApp[]; redirectUri: string }>("GET", "/oauth/apps"));
  const [editing, setEditing] = useState<OAuthApp | null>(null);
  // A new key empties the form after each save.
  const [formKey, setFormKey] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const list = apps.data ? apps.data.apps : null;
  const missing = (connections ?? []).filter((connection) => !connection.appConfigured).map((connection) => connection.vendor);

  async function changed(message: string | null) {
    setNotice(message);
    setEditing(null);
    setFormKey((key) => key + 1);
    await Promise.all([apps.reload(), onChanged()]);
  }

  async function remove(app: OAuthApp) {
    setError(null);
    try {
      await api("DELETE", `/oauth/apps/${enc(app.vendor)}`);
      await changed(`Removed the ${app.vendor} app.`);
    } catch (caught) {
      setError(`Could not remove the ${app.vendor} app: ${errorMessage(caught)}`);
      await changed(null);
    }
  }

  return (
    <section id="oauth-apps" aria-labelledby="oauth-apps-title" data-testid="oauth-apps" className="scroll-mt-4 space-y-4">
      <h2 id="oauth-apps-title" className="text-lg font-semibold">
        OAuth apps <span className="text-sm font-normal text-slate-500">(admins)</span>
      </h2>
      <Card title="Redirect URI to register at each vendor">
        {apps.data ? <CodeBlock text={apps.data.redirectUri} testId="redirect-uri" copyLabel="Copy redirect URI" /> : null}
      </Card>
      <Card title="Registered apps" testId="oauth-apps-card">
        <ListStates state={{ ...apps, data: list }} name="oauth-apps" empty="No OAuth app registered yet." />
        {error ? <ErrorBox message={error} testId="oauth-app-remove-error" /> : null}
        {notice ? <Notice testId="oauth-app-notice">{notice}</Notice> : null}
        {list && list.length > 0 ? (
          <Table label="OAuth apps" testId="oauth-apps-table" columns={["Vendor", "Client id", "Endpoints", "Scopes", "Client secret", "From", <span key="actions" className="sr-only">Actions</span>]}>
            {list.map((app) => (
              <Row key={app.vendor} testId={`oauth-app-${app.vendor}`}>
                <Cell className="font-medium">{app.vendor}</Cell>
                <Cell className="break-all font-mono text-xs">{app.clientId}</Cell>
                <Cell className="break-all text-xs">
                  <span className="block">authorize: {app.authorizeUrl ?? "—"}</span>
                  <span className="block">token: {app.tokenUrl ?? "—"}</span>
                  <span className="block text-slate-500">PKCE: {app.pkce ? "yes" : "no"}</span>
                </Cell>
                <Cell className="text-xs">{app.scopes.join(" ") || "—"}</Cell>
                <Cell>
                  <Badge tone={app.hasClientSecret ? "green" : "slate"} testId="oauth-app-secret">
                    {app.hasClientSecret ? "set" : "none (public)"}
                  </Badge>
                </Cell>
                <Cell className="text-xs">{app.source === "environment" ? "GIG_OAUTH_* variables" : "stored"}</Cell>
                <Cell className="text-right">
                  {app.source === "stored" ? (
                    <div className="flex flex-wrap justify-end gap-2">
                      <Button variant="secondary" data-testid={`oauth-app-edit-${app.vendor}`} aria-label={`Replace the ${app.vendor} app`} onClick={() => {
                          setNotice(null);
                          setEditing(app);
                        }}>
                        Replace
                      </Button>
                      <ConfirmButton
                        label="Remove"
                        testId={`oauth-app-remove-${app.vendor}`}
                        ariaLabel={`Remove the ${app.vendor} app`}
                        title={`Remove the ${app.vendor} app?`}
                        description="Existing connections keep working until a refresh needs the app; nobody can connect until it is set again."
                        confirmLabel="Remove"
                        onConfirm={() => remove(app)}
                      />
                    </div>
                  ) : (
                    <span className="text-xs text-slate-500">change the variables</span>
                  )}
                </Cell>
              </Row>
            ))}
          </Table>
        ) : null}
      </Card>
      <AppForm key={`${editing?.vendor ?? "new"}-${formKey}`} initial={editing} suggestions={missing} onSaved={(vendor) => changed(`Saved the ${vendor} app.`)} onCancel={editing ? () => setEditing(null) : undefined} />
    </section>
  );
}

function AppForm({ initial, suggestions, onSaved, onCancel }: { initial: OAuthApp | null; suggestions: string[]; onSaved(vendor: string): Promise<void>; onCancel?: () => void }) {
  const [vendor, setVendor] = useState(initial?.vendor ?? "");
  const [clientId, setClientId] = useState(initial?.clientId ?? "");
  const [clientSecret, setClientSecret] = useState("");
  const [publicClient, setPublicClient] = useState(initial ? !initial.hasClientSecret : false);
  const [authorizeUrl, setAuthorizeUrl] = useState(initial?.authorizeUrl ?? "");
  const [tokenUrl, setTokenUrl] = useState(initial?.tokenUrl ?? "");
  const [scopes, setScopes] = useState(initial?.scopes.join(" ") ?? "");
  const [pkce, setPkce] = useState<"" | "true" | "false">(initial ? (initial.pkce ? "true" : "false") : "");
  const { busy, error, run } = useSubmit();

  async function submit(event: FormEvent) {
    event.preventDefault();
    const secret = clientSecret;
    setClientSecret("");
    const name = vendor.trim();
    const scopeList = scopes.split(/\s+/).filter(Boolean);
    await run(async () => {
      await api("PUT", `/oauth/apps/${enc(name)}`, {
        clientId: clientId.trim(),
        // Empty: keep the stored secret (undefined is left out of the JSON); public: none at all.
        clientSecret: publicClient ? null : secret || undefined,
        authorizeUrl: authorizeUrl.trim() || null,
        tokenUrl: tokenUrl.trim() || null,
        scopes: scopeList.length ? scopeList : null,
        pkce: pkce === "" ? null : pkce === "true",
      });
      // Remounts this form (emptied).
      await onSaved(name);
    });
  }

  return (
    <Card title={initial ? `Replace the ${initial.vendor} app` : "Register an app"}>
      <form onSubmit={submit} className="grid gap-3 sm:grid-cols-2" data-testid="oauth-app-form" aria-label="Register an OAuth app" autoComplete="off">
        <Field label="Vendor" htmlFor="oauth-app-vendor" hint={suggestions.length ? `used by installed servers without an app: ${suggestions.join(", ")}` : "its slug, such as google or stack-exchange"}>
          <input
            id="oauth-app-vendor"
            data-testid="oauth-app-vendor"
            className={inputClass}
            required
            maxLength={64}
            list="oauth-app-vendors"
            readOnly={initial !== null}
            value={vendor}
            onChange={(event) => setVendor(event.target.value)}
          />
          <datalist id="oauth-app-vendors">
            {suggestions.map((suggestion) => (
              <option key={suggestion} value={suggestion} />
            ))}
          </datalist>
        </Field>
        <Field label="Client id" htmlFor="oauth-app-client-id">
          <input id="oauth-app-client-id" data-testid="oauth-app-client-id" className={inputClass} required maxLength={512} value={clientId} onChange={(event) => setClientId(event.target.value)} />
        </Field>
        <Field label="Client secret" htmlFor="oauth-app-client-secret" hint={initial?.hasClientSecret ? "write-only: leave empty to keep the stored secret" : "write-only: sealed and never displayed"}>
          <input
            id="oauth-app-client-secret"
            data-testid="oauth-app-client-secret"
            type="password"
            autoComplete="new-password"
            spellCheck={false}
            className={inputClass}
            maxLength={4096}
            disabled={publicClient}
            value={clientSecret}
            onChange={(event) => setClientSecret(event.target.value)}
          />
          <label className="mt-1 flex items-center gap-2 text-xs text-slate-600">
            <input type="checkbox" data-testid="oauth-app-public" checked={publicClient} onChange={(event) => setPublicClient(event.target.checked)} />
            Public client (no secret, PKCE only)
          </label>
        </Field>
        <Field label="PKCE" htmlFor="oauth-app-pkce">
          <select id="oauth-app-pkce" data-testid="oauth-app-pkce" className={inputClass} value={pkce} onChange={(event) => setPkce(event.target.value as typeof pkce)}>
            <option value="">the vendor&apos;s default</option>
            <option value="true">send a challenge (S256)</option>
            <option value="false">off</option>
          </select>
        </Field>
        <Field label="Authorize URL" htmlFor="oauth-app-authorize-url" hint="empty: the vendor's built-in endpoint (required for vendors without one)">
          <input id="oauth-app-authorize-url" data-testid="oauth-app-authorize-url" type="url" className={inputClass} maxLength={2048} value={authorizeUrl} onChange={(event) => setAuthorizeUrl(event.target.value)} />
        </Field>
        <Field label="Token URL" htmlFor="oauth-app-token-url" hint="empty: the vendor's built-in endpoint">
          <input id="oauth-app-token-url" data-testid="oauth-app-token-url" type="url" className={inputClass} maxLength={2048} value={tokenUrl} onChange={(event) => setTokenUrl(event.target.value)} />
        </Field>
        <Field label="Extra scopes" htmlFor="oauth-app-scopes" hint="space-separated, asked for on top of what the servers declare (e.g. offline_access)">
          <input id="oauth-app-scopes" data-testid="oauth-app-scopes" className={inputClass} value={scopes} onChange={(event) => setScopes(event.target.value)} />
        </Field>
        <div className="space-y-2 sm:col-span-2">
          {error ? <ErrorBox message={error} testId="oauth-app-error" /> : null}
          <div className="flex flex-wrap gap-2">
            <Button type="submit" disabled={busy} data-testid="oauth-app-submit">
              {busy ? "Saving…" : "Save app"}
            </Button>
            {onCancel ? (
              <Button variant="secondary" onClick={onCancel}>
                Cancel
              </Button>
            ) : null}
          </div>
        </div>
      </form>
    </Card>
  );
}
