"use client";

import { useEffect, useState, type FormEvent } from "react";
import { Shell } from "@/components/shell";
import { Button, Card, Cell, ConfirmButton, ErrorBox, Field, inputClass, ListStates, Notice, Row, Table } from "@/components/ui";
import { api, enc, formatTime, type Credential, type CredentialType, type Server } from "@/lib/api";
import { useLoad } from "@/lib/use-load";
import { useSubmit } from "@/lib/use-submit";

const TYPES: { value: CredentialType; label: string; hint: string }[] = [
  { value: "api_key", label: "API key", hint: "the key itself" },
  { value: "basic", label: "Basic", hint: "user:password" },
  { value: "oauth2", label: "OAuth 2", hint: "as the server's credential spec expects" },
];

export default function CredentialsPage() {
  const credentials = useLoad(() => api<Credential[]>("GET", "/credentials"));
  const servers = useLoad(() => api<Server[]>("GET", "/servers"));
  return (
    <Shell title="Credentials">
      <p className="text-sm text-slate-600">Secrets are sealed by the gateway and injected into a server&apos;s requests; their values are never shown again.</p>
      <Card title="Set credentials" testId="credentials-list-card">
        <ListStates state={credentials} name="credentials" empty="No credentials set yet." />
        {credentials.data && credentials.data.length > 0 ? (
          <Table label="Credentials" testId="credentials-table" columns={["Server", "Id", "Type", "Updated", <span key="actions" className="sr-only">Actions</span>]}>
            {credentials.data.map((credential) => (
              <Row key={`${credential.server}/${credential.id}`} testId={`credential-${credential.server}-${credential.id}`}>
                <Cell className="font-medium">{credential.server}</Cell>
                <Cell>{credential.id}</Cell>
                <Cell>{credential.type}</Cell>
                <Cell className="whitespace-nowrap text-xs text-slate-500">{formatTime(credential.updatedAt)}</Cell>
                <Cell className="text-right">
                  <ConfirmButton
                    label="Delete"
                    ariaLabel={`Delete credential ${credential.id} of ${credential.server}`}
                    title={`Delete credential ${credential.id} of ${credential.server}?`}
                    description="Calls of this server that need it fail until it is set again."
                    confirmLabel="Delete"
                    onConfirm={async () => {
                      try {
                        await api("DELETE", `/credentials/${enc(credential.server)}/${enc(credential.id)}`);
                      } finally {
                        await credentials.reload();
                      }
                    }}
                  />
                </Cell>
              </Row>
            ))}
          </Table>
        ) : null}
      </Card>
      <SetCredential servers={servers.data} serversError={servers.error} onSet={credentials.reload} />
    </Shell>
  );
}

function SetCredential({ servers, serversError, onSet }: { servers: Server[] | null; serversError: string | null; onSet: () => Promise<void> }) {
  const [server, setServer] = useState("");
  const [id, setId] = useState("");
  const [type, setType] = useState<CredentialType>("api_key");
  const [secret, setSecret] = useState("");
  const { busy, error, run } = useSubmit();
  const [done, setDone] = useState<string | null>(null);

  const declared = servers?.find((s) => s.name === server)?.credentials ?? [];
  useEffect(() => {
    if (!server && servers && servers[0]) setServer(servers[0].name);
  }, [servers, server]);
  useEffect(() => {
    const first = declared[0];
    if (first && !declared.some((c) => c.id === id)) {
      setId(first.id);
      setType(first.type);
    }
  }, [declared, id]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setDone(null);
    const value = secret;
    setSecret("");
    await run(async () => {
      await api("PUT", `/credentials/${enc(server.trim())}/${enc(id.trim())}`, { type, secret: value });
      setDone(`Credential ${id} of ${server} saved.`);
      await onSet();
    });
  }

  return (
    <Card title="Set or rotate a credential">
      {serversError ? <ErrorBox message={`Could not load servers: ${serversError}`} /> : null}
      <form onSubmit={submit} className="grid gap-3 sm:grid-cols-2" data-testid="credential-form" aria-label="Set a credential" autoComplete="off">
        <Field label="Server" htmlFor="credential-server">
          {servers && servers.length > 0 ? (
            <select id="credential-server" data-testid="credential-server" className={inputClass} value={server} onChange={(event) => setServer(event.target.value)}>
              {servers.map((s) => (
                <option key={s.name} value={s.name}>
                  {s.name}
                </option>
              ))}
            </select>
          ) : (
            <input id="credential-server" data-testid="credential-server" className={inputClass} required value={server} onChange={(event) => setServer(event.target.value)} />
          )}
        </Field>
        <Field label="Credential id" htmlFor="credential-id" hint={declared.length ? `declared: ${declared.map((c) => `${c.id} (${c.type})`).join(", ")}` : undefined}>
          <input id="credential-id" data-testid="credential-id" className={inputClass} required maxLength={64} list="credential-ids" value={id} onChange={(event) => setId(event.target.value)} />
          <datalist id="credential-ids">
            {declared.map((c) => (
              <option key={c.id} value={c.id} />
            ))}
          </datalist>
        </Field>
        <Field label="Type" htmlFor="credential-type" hint={TYPES.find((t) => t.value === type)?.hint}>
          <select id="credential-type" data-testid="credential-type" className={inputClass} value={type} onChange={(event) => setType(event.target.value as CredentialType)}>
            {TYPES.map((t) => (
              <option key={t.value} value={t.value}>
                {t.label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Secret" htmlFor="credential-secret" hint="write-only: cleared on submit and never displayed">
          <input
            id="credential-secret"
            data-testid="credential-secret"
            type="password"
            autoComplete="new-password"
            spellCheck={false}
            className={inputClass}
            required
            maxLength={16384}
            value={secret}
            onChange={(event) => setSecret(event.target.value)}
          />
        </Field>
        <div className="space-y-2 sm:col-span-2">
          {error ? <ErrorBox message={error} testId="credential-error" /> : null}
          {done ? <Notice testId="credential-saved">{done}</Notice> : null}
          <Button type="submit" disabled={busy} data-testid="credential-submit">
            {busy ? "Saving…" : "Save credential"}
          </Button>
        </div>
      </form>
    </Card>
  );
}
