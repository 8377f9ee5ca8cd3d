"use client";

import Link from "next/link";
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { Shell } from "@/components/shell";
import { Card, Empty, ErrorBox, Loading } from "@/components/ui";
import { api, type AuditSummary, type Profile, type RunningSandbox, type Server } from "@/lib/api";
import { useLoad } from "@/lib/use-load";

export default function OverviewPage() {
  return (
    <Shell title="Overview">
      <Counts />
      <CallsChart />
    </Shell>
  );
}

function Counts() {
  const profiles = useLoad(() => api<Profile[]>("GET", "/profiles"));
  const servers = useLoad(() => api<Server[]>("GET", "/servers"));
  const running = useLoad(() => api<RunningSandbox[]>("GET", "/servers/running"));
  const tiles = [
    { label: "Profiles", href: "/profiles/", state: profiles, testId: "count-profiles" },
    { label: "Installed servers", href: "/servers/", state: servers, testId: "count-servers" },
    { label: "Running sandboxes", href: "/servers/", state: running, testId: "count-running" },
  ];
  return (
    <ul className="grid gap-3 sm:grid-cols-3" aria-label="Counts">
      {tiles.map((tile) => (
        <li key={tile.label}>
          <Link
            href={tile.href}
            className="block rounded-lg border border-slate-200 bg-white p-4 shadow-sm hover:border-indigo-300 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
          >
            <span className="block text-sm text-slate-600">{tile.label}</span>
            <span className="block text-3xl font-semibold" data-testid={tile.testId}>
              {tile.state.error ? "?" : tile.state.data ? tile.state.data.length : "…"}
            </span>
            {tile.state.error ? <span className="block text-xs text-red-700">{tile.state.error}</span> : null}
          </Link>
        </li>
      ))}
    </ul>
  );
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

function hourLabel(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function CallsChart() {
  const summary = useLoad(() => api<AuditSummary>("GET", "/audit/summary"));
  const buckets = summary.data?.buckets ?? [];
  const total = buckets.reduce((sum, bucket) => ({ calls: sum.calls + bucket.calls, denies: sum.denies + bucket.denies }), { calls: 0, denies: 0 });
  return (
    <Card title="Tool calls and denies, last 24 hours" testId="overview-chart-card" actions={summary.data ? <span className="text-xs text-slate-500">{plural(total.calls, "call")} · {plural(total.denies, "deny", "denies")}</span> : null}>
      {summary.loading && !summary.data ? <Loading label="Loading the activity…" /> : null}
      {summary.error ? <ErrorBox message={summary.error} testId="overview-chart-error" /> : null}
      {summary.data && total.calls + total.denies === 0 ? <Empty testId="overview-chart-empty">No tool calls in the last 24 hours.</Empty> : null}
      {summary.data ? (
        <figure data-testid="overview-chart" className="h-64 w-full" aria-label={`Bar chart: ${total.calls} tool calls and ${total.denies} denies in the last 24 hours`}>
          <ResponsiveContainer width="100%" height="100%">
            <BarChart data={buckets} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#e2e8f0" vertical={false} />
              <XAxis dataKey="start" tickFormatter={hourLabel} tick={{ fontSize: 11 }} minTickGap={24} />
              <YAxis allowDecimals={false} tick={{ fontSize: 11 }} />
              <Tooltip labelFormatter={(value) => hourLabel(Number(value))} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              <Bar dataKey="calls" name="calls" fill="#4f46e5" isAnimationActive={false} />
              <Bar dataKey="denies" name="denies" fill="#dc2626" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </figure>
      ) : null}
    </Card>
  );
}
