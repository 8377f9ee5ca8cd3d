"use client";

import { useEffect, useState, type FormEvent } from "react";
import { Shell } from "@/components/shell";
import { Button, Card, CodeBlock, ConfirmButton, CopyButton, Empty, ErrorBox, Field, inputClass, Loading, Notice } from "@/components/ui";
import { api, enc, errorMessage, formatTime, type Profile, type ProfileServer, type ProfileToken, type Server } from "@/lib/api";
import { useLoad } from "@/lib/use-load";
import { useSubmit } from "@/lib/use-submit";

const NAME_PATTERN = "[a-z0-9][a-z0-9_\\-]{0,62}";

export default function ProfilesPage() {
  const profiles = useLoad(() => api<Profile[]>("GET", "/profiles"));
  const servers = useLoad(() => api<Server[]>("GET", "/servers"));
  return (
    <Shell title="Profiles">
      <p className="text-sm text-slate-600">A profile is one MCP endpoint (/mcp/p/NAME) bundling servers; clients reach it with a profile token.</p>
      <CreateProfile onCreated={profiles.reload} />
      {profiles.loading && !profiles.data ? <Loading label="Loading profiles…" /> : null}
      {profiles.error ? <ErrorBox message={profiles.error} testId="profiles-error" /> : null}
      {profiles.data && profiles.data.length === 0 ? <Empty testId="profiles-empty">No profiles yet: create one above.</Empty> : null}
      <ul className="space-y-4" data-testid="profile-list">
        {profiles.data?.map((profile) => (
          <li key={profile.name}>
            <ProfileCard profile={profile} servers={servers.data ?? []} serversError={servers.error} onDeleted={profiles.reload} />
          </li>
        ))}
      </ul>
    </Shell>
  );
}

function CreateProfile({ onCreated }: { onCreated: () => Promise<void> }) {
  const [name, setName] = useState("");
  const { busy, error, run } = useSubmit();
  async function submit(event: FormEvent) {
    event.preventDefault();
    await run(async () => {
      await api("POST", "/profiles", { name: name.trim() });
      setName("");
      await onCreated();
    });
  }
  return (
    <Card title="New profile">
      <form onSubmit={submit} data-testid="create-profile-form" className="flex flex-col gap-3 sm:flex-row sm:items-end">
        <div className="flex-1">
          <Field label="Profile name" htmlFor="profile-name" hint="lowercase letters, digits, - and _ (at most 63)">
            <input
              id="profile-name"
              data-testid="profile-name"
              className={inputClass}
              required
              pattern={NAME_PATTERN}
              maxLength={63}
              value={name}
              onChange={(event) => setName(event.target.value)}
            />
          </Field>
        </div>
        <Button type="submit" disabled={busy} data-testid="create-profile-submit" className="sm:mb-5">
          {busy ? "Creating…" : "Create profile"}
        </Button>
      </form>
      {error ? <div className="mt-3"><ErrorBox message={error} testId="create-profile-error" /></div> : null}
    </Card>
  );
}

function ProfileCard({ profile, servers, serversError, onDeleted }: { profile: Profile; servers: Server[]; serversError: string | null; onDeleted: () => Promise<void> }) {
  const p = enc(profile.name);
  const members = useLoad(() => api<ProfileServer[]>("GET", `/profiles/${p}/servers`), [p]);
  const tokens = useLoad(() => api<ProfileToken[]>("GET", `/profiles/${p}/tokens`), [p]);
  const [error, setError] = useState<string | null>(null);
  const [deleting, setDeleting] = useState(false);

  return (
    <Card
      title={<span data-testid="profile-name-heading">{profile.name}</span>}
      testId={`profile-${profile.name}`}
      actions={
        <ConfirmButton
          variant="danger"
          label="Delete"
          disabled={deleting}
          testId={`delete-profile-${profile.name}`}
          title={`Delete profile ${profile.name}?`}
          description="Its tokens stop working at once and clients using it lose its tools."
          confirmLabel="Delete profile"
          onConfirm={async () => {
            setDeleting(true);
            setError(null);
            try {
              await api("DELETE", `/profiles/${p}`);
              await onDeleted();
            } catch (caught) {
              setError(errorMessage(caught));
              setDeleting(false);
            }
          }}
        />
      }
    >
      <p className="mb-3 text-xs text-slate-500">
        Endpoint <code className="rounded bg-slate-100 px-1">/mcp/p/{profile.name}</code> · created {formatTime(profile.createdAt)}
      </p>
      {error ? <ErrorBox message={error} /> : null}
      <div className="grid gap-4 md:grid-cols-2">
        <div className="space-y-3">
          <h3 className="text-sm font-semibold">Servers</h3>
          {members.loading && !members.data ? <Loading label="Loading servers…" /> : null}
          {members.error ? <ErrorBox message={members.error} /> : null}
          {members.data && members.data.length === 0 ? <Empty testId={`profile-servers-empty-${profile.name}`}>No servers in this profile yet.</Empty> : null}
          <ul className="space-y-1" data-testid={`profile-servers-${profile.name}`}>
            {members.data?.map((member) => (
              <li key={member.server} className="flex items-center justify-between gap-2 rounded border border-slate-200 px-2 py-1 text-sm" data-testid={`profile-server-${profile.name}-${member.server}`}>
                <span>
                  <span className="font-medium">{member.server}</span>
                  <span className="ml-2 text-xs text-slate-500">{member.tools ? `tools: ${member.tools.join(", ")}` : "all tools"}</span>
                </span>
                <Button
                  variant="secondary"
                  aria-label={`Remove ${member.server} from ${profile.name}`}
                  onClick={async () => {
                    setError(null);
                    try {
                      await api("DELETE", `/profiles/${p}/servers/${enc(member.server)}`);
                      await members.reload();
                    } catch (caught) {
                      setError(errorMessage(caught));
                    }
                  }}
                >
                  Remove
                </Button>
              </li>
            ))}
          </ul>
          <AddServer profile={profile.name} servers={servers} serversError={serversError} present={members.data?.map((m) => m.server) ?? []} onAdded={members.reload} />
        </div>
        <div className="space-y-3">
          <h3 className="text-sm font-semibold">Tokens</h3>
          {tokens.loading && !tokens.data ? <Loading label="Loading tokens…" /> : null}
          {tokens.error ? <ErrorBox message={tokens.error} /> : null}
          {tokens.data && tokens.data.length === 0 ? <Empty testId={`profile-tokens-empty-${profile.name}`}>No tokens yet.</Empty> : null}
          <ul className="space-y-1" data-testid={`profile-tokens-${profile.name}`}>
            {tokens.data?.map((token) => (
              <li key={token.prefix} className="flex flex-wrap items-center justify-between gap-2 rounded border border-slate-200 px-2 py-1 text-sm">
                <span>
                  <code className="font-mono">{token.prefix}…</code> <span className="text-slate-600">{token.label}</span>
                  <span className="block text-xs text-slate-500">
                    created {formatTime(token.createdAt)} · {token.lastUsedAt ? `last used ${formatTime(token.lastUsedAt)}` : "never used"}
                  </span>
                </span>
                <ConfirmButton
                  label="Revoke"
                  ariaLabel={`Revoke token ${token.prefix}`}
                  title={`Revoke token ${token.prefix}?`}
                  description="Clients using it stop working."
                  confirmLabel="Revoke"
                  onConfirm={async () => {
                    setError(null);
                    try {
                      await api("DELETE", `/profiles/${p}/tokens/${enc(token.prefix)}`);
                      await tokens.reload();
                    } catch (caught) {
                      setError(errorMessage(caught));
                    }
                  }}
                />
              </li>
            ))}
          </ul>
          <CreateToken profile={profile.name} onCreated={tokens.reload} />
        </div>
      </div>
    </Card>
  );
}

function AddServer({ profile, servers, serversError, present, onAdded }: { profile: string; servers: Server[]; serversError: string | null; present: string[]; onAdded: () => Promise<void> }) {
  const available = servers.filter((server) => !present.includes(server.name));
  const [server, setServer] = useState("");
  const [picked, setPicked] = useState<string[]>([]);
  const { busy, error, run } = useSubmit();
  const id = `add-server-${profile}`;
  useEffect(() => {
    if (!available.some((s) => s.name === server)) setServer(available[0]?.name ?? "");
  }, [available, server]);

  if (serversError) return <ErrorBox message={`Could not load servers: ${serversError}`} />;
  if (servers.length === 0) return <Empty testId={`add-server-none-${profile}`}>The gateway has no servers yet (an admin installs them).</Empty>;
  if (available.length === 0) return <p className="text-xs text-slate-500">Every server is already in this profile.</p>;

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!server) return;
    await run(async () => {
      await api("PUT", `/profiles/${enc(profile)}/servers/${enc(server)}`, { tools: picked.length ? picked : null });
      setPicked([]);
      await onAdded();
    });
  }

  return (
    <form onSubmit={submit} className="space-y-2 rounded-md bg-slate-50 p-3" data-testid={`add-server-form-${profile}`}>
      <Field label="Add server" htmlFor={`${id}-select`}>
        <select
          id={`${id}-select`}
          data-testid={`add-server-select-${profile}`}
          className={inputClass}
          value={server}
          onChange={(event) => {
            setServer(event.target.value);
            setPicked([]);
          }}
        >
          {available.map((s) => (
            <option key={s.name} value={s.name}>
              {s.name} ({s.kind}, {s.tier})
            </option>
          ))}
        </select>
      </Field>
      {server ? <ToolPicker profile={profile} server={server} picked={picked} onChange={setPicked} /> : null}
      {error ? <ErrorBox message={error} testId={`add-server-error-${profile}`} /> : null}
      <Button type="submit" disabled={busy || !server} data-testid={`add-server-submit-${profile}`}>
        {busy ? "Adding…" : "Add server"}
      </Button>
    </form>
  );
}

/** The server's tools as checkboxes: none checked exposes every tool, including ones it adds later. */
function ToolPicker({ profile, server, picked, onChange }: { profile: string; server: string; picked: string[]; onChange: (tools: string[]) => void }) {
  const tools = useLoad(() => api<{ name: string; description?: string }[]>("GET", `/servers/${enc(server)}/tools`), [server]);
  const toggle = (name: string, checked: boolean) => onChange(checked ? [...picked, name] : picked.filter((tool) => tool !== name));
  return (
    <fieldset className="space-y-1" data-testid={`tool-picker-${profile}`}>
      <legend className="text-sm font-medium text-slate-700">Tools</legend>
      <p className="text-xs text-slate-500">{picked.length ? `Only the ${picked.length} checked tool(s) are exposed.` : "None checked: every tool is exposed, including ones the server adds later."}</p>
      {tools.loading && !tools.data ? <Loading label={`Asking ${server} for its tools…`} /> : null}
      {tools.error ? <ErrorBox message={`Could not list the tools of ${server}: ${tools.error}`} testId={`tool-picker-error-${profile}`} /> : null}
      <ul className="max-h-48 space-y-1 overflow-y-auto">
        {(tools.data ?? []).map((tool) => (
          <li key={tool.name}>
            <label className="flex items-start gap-2 text-sm">
              <input
                type="checkbox"
                className="mt-1 focus-visible:ring-2 focus-visible:ring-indigo-500"
                data-testid={`tool-${profile}-${tool.name}`}
                checked={picked.includes(tool.name)}
                onChange={(event) => toggle(tool.name, event.target.checked)}
              />
              <span>
                <span className="font-mono">{tool.name}</span>
                {tool.description ? <span className="block text-xs text-slate-500">{tool.description}</span> : null}
              </span>
            </label>
          </li>
        ))}
      </ul>
    </fieldset>
  );
}

function CreateToken({ profile, onCreated }: { profile: string; onCreated: () => Promise<void> }) {
  const [label, setLabel] = useState("");
  const { busy, error, run } = useSubmit();
  const [created, setCreated] = useState<{ token: string; prefix: string } | null>(null);
  const id = `token-label-${profile}`;

  async function submit(event: FormEvent) {
    event.preventDefault();
    await run(async () => {
      const result = await api<{ token: string; prefix: string }>("POST", `/profiles/${enc(profile)}/tokens`, { label: label.trim() || "api" });
      setCreated(result);
      setLabel("");
      await onCreated();
    });
  }

  const origin = typeof window === "undefined" ? "" : window.location.origin;
  const url = `${origin}/mcp/p/${profile}`;

  return (
    <div className="space-y-3">
      <form onSubmit={submit} className="space-y-2 rounded-md bg-slate-50 p-3" data-testid={`create-token-form-${profile}`}>
        <Field label="Token label" htmlFor={id} hint="what the token is for, e.g. laptop-claude">
          <input id={id} data-testid={`token-label-${profile}`} className={inputClass} maxLength={100} value={label} onChange={(event) => setLabel(event.target.value)} />
        </Field>
        {error ? <ErrorBox message={error} testId={`create-token-error-${profile}`} /> : null}
        <Button type="submit" disabled={busy} data-testid={`create-token-submit-${profile}`}>
          {busy ? "Creating…" : "Create token"}
        </Button>
      </form>
      {created ? (
        <div data-testid={`token-created-${profile}`} className="space-y-3 rounded-md border border-amber-300 bg-amber-50 p-3">
          <Notice testId={`token-once-${profile}`}>Copy this token now: it is shown once and never again.</Notice>
          <div className="flex flex-wrap items-center gap-2">
            <code data-testid="new-token" data-profile={profile} className="break-all rounded bg-white px-2 py-1 font-mono text-xs">
              {created.token}
            </code>
            <CopyButton text={created.token} label="Copy token" testId={`token-copy-${profile}`} />
          </div>
          <div className="space-y-1">
            <p className="text-xs font-semibold">Claude Code</p>
            <CodeBlock
              testId={`snippet-claude-${profile}`}
              copyLabel="Copy command"
              text={`claude mcp add --transport http gigmcp ${url} --header "Authorization: Bearer ${created.token}"`}
            />
          </div>
          <div className="space-y-1">
            <p className="text-xs font-semibold">Cursor (mcp.json)</p>
            <CodeBlock
              testId={`snippet-cursor-${profile}`}
              copyLabel="Copy mcp.json"
              text={JSON.stringify({ mcpServers: { gigmcp: { url, headers: { Authorization: `Bearer ${created.token}` } } } }, null, 2)}
            />
          </div>
          <div className="space-y-1">
            <p className="text-xs font-semibold">Any MCP client (streamable HTTP)</p>
            <CodeBlock testId={`snippet-generic-${profile}`} copyLabel="Copy settings" text={`URL: ${url}\nHeader: Authorization: Bearer ${created.token}`} />
          </div>
          <Button variant="secondary" data-testid={`token-dismiss-${profile}`} onClick={() => setCreated(null)}>
            I have copied it
          </Button>
        </div>
      ) : null}
    </div>
  );
}
