"use client";

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Shell } from "@/components/shell";
import { Badge, Button, Card, Cell, Empty, ErrorBox, Field, inputClass, Loading, Row, Table } from "@/components/ui";
import { useSession } from "@/components/session";
import { api, errorMessage, formatTime, queryString, type AuditEvent, type User } from "@/lib/api";
import { useLoad } from "@/lib/use-load";

const PAGE_SIZE = 50;
const DECISION_TONE = { allow: "green", deny: "red", inject: "amber" } as const;

interface Filters {
  decision: string;
  action: string;
  server: string;
  /** A datetime-local value, "" for no lower bound. */
  since: string;
  /** A user's id (admins only: members always see their own tenant), "" for everyone. */
  tenant: string;
}
const NO_FILTERS: Filters = { decision: "", action: "", server: "", since: "", tenant: "" };

/** The query parameters /audit, /audit/stream and /audit/export share. */
function filterParams(filters: Filters) {
  const since = filters.since ? new Date(filters.since).getTime() : NaN;
  return {
    decision: filters.decision,
    action: filters.action.trim(),
    server: filters.server.trim(),
    since: Number.isFinite(since) ? since : undefined,
    tenant: filters.tenant,
  };
}

/** Newest first, each event once (the live tail and paging may both bring one). */
function merge(...lists: AuditEvent[][]): AuditEvent[] {
  const byId = new Map<number, AuditEvent>();
  for (const list of lists) for (const event of list) byId.set(event.id, event);
  return [...byId.values()].sort((a, b) => b.id - a.id);
}

export default function AuditPage() {
  const { user } = useSession();
  const users = useLoad(() => (user?.role === "admin" ? api<User[]>("GET", "/users") : Promise.resolve([])), [user?.role]);
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [live, setLive] = useState(false);
  const [liveError, setLiveError] = useState<string | null>(null);

  const fetchPage = useCallback(
    async (before?: number) => {
      setLoading(true);
      setError(null);
      try {
        const page = await api<AuditEvent[]>("GET", `/audit${queryString({ ...filterParams(filters), limit: PAGE_SIZE, before })}`);
        setEvents((current) => (before === undefined ? merge(page) : merge(current ?? [], page)));
        setMore(page.length === PAGE_SIZE);
      } catch (caught) {
        setError(errorMessage(caught));
      } finally {
        setLoading(false);
      }
    },
    [filters],
  );

  useEffect(() => {
    setEvents(null);
    void fetchPage();
  }, [fetchPage]);

  const newestId = events?.[0]?.id;
  const loaded = events !== null;
  // Reconnects only when the tail is switched or the filters change, not on every new event.
  useEffect(() => {
    if (!live || !loaded) return;
    setLiveError(null);
    const source = new EventSource(`/api/v1/audit/stream${queryString({ ...filterParams(filters), after: newestId })}`);
    source.addEventListener("audit", (message) => {
      const event = JSON.parse((message as MessageEvent<string>).data) as AuditEvent;
      setEvents((current) => merge([event], current ?? []));
    });
    source.onerror = () => setLiveError("The live tail lost the gateway; it reconnects on its own.");
    source.onopen = () => setLiveError(null);
    return () => source.close();
  }, [live, filters, loaded]);

  function apply(event: FormEvent) {
    event.preventDefault();
    setFilters(draft);
  }

  const exportHref = `/api/v1/audit/export${queryString(filterParams(filters))}`;
  const filtered = Object.values(filters).some(Boolean);

  return (
    <Shell title="Audit">
      <Card title="Filters">
        <form onSubmit={apply} className="grid gap-3 sm:grid-cols-2 lg:grid-cols-4" data-testid="audit-filters" aria-label="Audit filters">
          <Field label="Decision" htmlFor="audit-decision">
            <select id="audit-decision" data-testid="audit-filter-decision" className={inputClass} value={draft.decision} onChange={(event) => setDraft({ ...draft, decision: event.target.value })}>
              <option value="">Any</option>
              <option value="allow">allow</option>
              <option value="deny">deny</option>
              <option value="inject">inject</option>
            </select>
          </Field>
          <Field label="Action" htmlFor="audit-action" hint="e.g. tool.call, credential.set">
            <input id="audit-action" data-testid="audit-filter-action" className={inputClass} maxLength={64} value={draft.action} onChange={(event) => setDraft({ ...draft, action: event.target.value })} />
          </Field>
          <Field label="Server" htmlFor="audit-server">
            <input id="audit-server" data-testid="audit-filter-server" className={inputClass} maxLength={63} pattern="[a-z0-9][a-z0-9_\-]{0,62}" value={draft.server} onChange={(event) => setDraft({ ...draft, server: event.target.value })} />
          </Field>
          <Field label="Since" htmlFor="audit-since">
            <input id="audit-since" data-testid="audit-filter-since" type="datetime-local" className={inputClass} value={draft.since} onChange={(event) => setDraft({ ...draft, since: event.target.value })} />
          </Field>
          {user?.role === "admin" ? (
            <Field label="User" htmlFor="audit-tenant" hint={users.error ? `Could not load users: ${users.error}` : undefined}>
              <select id="audit-tenant" data-testid="audit-filter-tenant" className={inputClass} value={draft.tenant} onChange={(event) => setDraft({ ...draft, tenant: event.target.value })}>
                <option value="">Everyone</option>
                {(users.data ?? []).map((listed) => (
                  <option key={listed.id} value={listed.id}>
                    {listed.email}
                  </option>
                ))}
              </select>
            </Field>
          ) : null}
          <div className="flex flex-wrap gap-2 sm:col-span-2 lg:col-span-4">
            <Button type="submit" data-testid="audit-apply">
              Apply filters
            </Button>
            <Button
              variant="secondary"
              data-testid="audit-clear"
              onClick={() => {
                setDraft(NO_FILTERS);
                setFilters(NO_FILTERS);
              }}
            >
              Clear
            </Button>
          </div>
        </form>
      </Card>
      <div className="flex flex-wrap items-center justify-between gap-2">
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" data-testid="audit-live" className="h-4 w-4 rounded border-slate-300" checked={live} onChange={(event) => setLive(event.target.checked)} />
          Live tail {live ? <Badge tone="green">on</Badge> : null}
        </label>
        <div className="flex flex-wrap gap-2">
          <Button variant="secondary" onClick={() => void fetchPage()} disabled={loading} data-testid="audit-refresh">
            Refresh
          </Button>
          <a
            href={exportHref}
            download
            data-testid="audit-export"
            className="inline-flex items-center rounded-md border border-slate-300 bg-white px-3 py-2 text-sm font-medium text-slate-800 hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2"
          >
            Export CSV
          </a>
        </div>
      </div>
      {liveError ? <ErrorBox message={liveError} testId="audit-live-error" /> : null}
      {error ? <ErrorBox message={error} testId="audit-error" /> : null}
      {loading && events === null ? <Loading label="Loading audit events…" /> : null}
      {events && events.length === 0 ? <Empty testId="audit-empty">{filtered ? "No event matches these filters." : "No audit events yet."}</Empty> : null}
      {events && events.length > 0 ? (
        <Table label="Audit events, newest first" testId="audit-table" columns={["Time", "Action", "Decision", "Actor", "Detail"]}>
          {events.map((event) => (
            <Row key={event.id} testId="audit-row">
              <Cell className="whitespace-nowrap text-xs text-slate-500">{formatTime(event.time)}</Cell>
              <Cell className="font-mono text-xs">{event.action}</Cell>
              <Cell>
                <span data-testid="audit-decision" data-decision={event.decision}>
                  <Badge tone={DECISION_TONE[event.decision as keyof typeof DECISION_TONE] ?? "slate"}>{event.decision.toUpperCase()}</Badge>
                </span>
              </Cell>
              <Cell className="text-xs">{event.actor ?? "—"}</Cell>
              <Cell className="max-w-xs break-all font-mono text-xs text-slate-600">{Object.keys(event.detail ?? {}).length ? JSON.stringify(event.detail) : ""}</Cell>
            </Row>
          ))}
        </Table>
      ) : null}
      {events && more ? (
        <Button variant="secondary" disabled={loading} data-testid="audit-older" onClick={() => void fetchPage(events[events.length - 1]!.id)}>
          {loading ? "Loading…" : "Load older"}
        </Button>
      ) : null}
    </Shell>
  );
}
