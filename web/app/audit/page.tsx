"use client";

import { Shell } from "@/components/shell";
import { Button, ListStates } from "@/components/ui";
import { api, formatTime, type AuditEvent } from "@/lib/api";
import { useLoad } from "@/lib/use-load";

const DECISION_STYLE: Record<string, string> = {
  allow: "bg-emerald-100 text-emerald-800",
  deny: "bg-red-100 text-red-800",
  inject: "bg-amber-100 text-amber-800",
};

export default function AuditPage() {
  const audit = useLoad(() => api<AuditEvent[]>("GET", "/audit"));
  const events = [...(audit.data ?? [])].sort((a, b) => b.time - a.time || b.id - a.id);
  return (
    <Shell title="Audit">
      <div className="flex items-center justify-between gap-2">
        <p className="text-sm text-slate-600">Newest first.</p>
        <Button variant="secondary" onClick={() => void audit.reload()} disabled={audit.loading} data-testid="audit-refresh">
          Refresh
        </Button>
      </div>
      <ListStates state={audit} name="audit" empty="No audit events yet." />
      {events.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm" data-testid="audit-table">
            <thead className="bg-slate-50 text-xs uppercase text-slate-500">
              <tr>
                <th scope="col" className="px-3 py-2">Time</th>
                <th scope="col" className="px-3 py-2">Action</th>
                <th scope="col" className="px-3 py-2">Decision</th>
                <th scope="col" className="px-3 py-2">Actor</th>
                <th scope="col" className="px-3 py-2">Detail</th>
              </tr>
            </thead>
            <tbody>
              {events.map((event) => (
                <tr key={event.id} className="border-t border-slate-100 align-top" data-testid="audit-row">
                  <td className="whitespace-nowrap px-3 py-2 text-xs text-slate-500">{formatTime(event.time)}</td>
                  <td className="px-3 py-2 font-mono text-xs">{event.action}</td>
                  <td className="px-3 py-2">
                    <span data-testid="audit-decision" data-decision={event.decision} className={`rounded px-2 py-0.5 text-xs font-semibold ${DECISION_STYLE[event.decision] ?? "bg-slate-100 text-slate-700"}`}>
                      {event.decision}
                    </span>
                  </td>
                  <td className="px-3 py-2 text-xs">{event.actor ?? "—"}</td>
                  <td className="max-w-xs break-all px-3 py-2 font-mono text-xs text-slate-600">{Object.keys(event.detail ?? {}).length ? JSON.stringify(event.detail) : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Shell>
  );
}
