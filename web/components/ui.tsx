"use client";

import { useState, type ButtonHTMLAttributes, type ReactNode } from "react";

export function Button({ variant = "primary", className = "", ...props }: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: "primary" | "secondary" | "danger" }) {
  const styles = {
    primary: "bg-indigo-600 text-white hover:bg-indigo-700 disabled:bg-indigo-300",
    secondary: "bg-white text-slate-800 border border-slate-300 hover:bg-slate-100 disabled:text-slate-400",
    danger: "bg-red-600 text-white hover:bg-red-700 disabled:bg-red-300",
  }[variant];
  return (
    <button
      type="button"
      {...props}
      className={`inline-flex items-center justify-center gap-2 rounded-md px-3 py-2 text-sm font-medium focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 focus-visible:ring-offset-2 disabled:cursor-not-allowed ${styles} ${className}`}
    />
  );
}

export const inputClass =
  "block w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm shadow-sm focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500";

export function Field({ label, htmlFor, hint, children }: { label: string; htmlFor: string; hint?: string; children: ReactNode }) {
  return (
    <div className="space-y-1">
      <label htmlFor={htmlFor} className="block text-sm font-medium text-slate-700">
        {label}
      </label>
      {children}
      {hint ? <p className="text-xs text-slate-500">{hint}</p> : null}
    </div>
  );
}

export function ErrorBox({ message, testId = "error" }: { message: string; testId?: string }) {
  return (
    <div role="alert" data-testid={testId} className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {message}
    </div>
  );
}

export function Notice({ children, testId }: { children: ReactNode; testId?: string }) {
  return (
    <div role="status" data-testid={testId} className="rounded-md border border-emerald-200 bg-emerald-50 px-3 py-2 text-sm text-emerald-800">
      {children}
    </div>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p role="status" aria-live="polite" data-testid="loading" className="flex items-center gap-2 text-sm text-slate-500">
      <span className="inline-block h-4 w-4 animate-spin rounded-full border-2 border-slate-300 border-t-indigo-600" aria-hidden="true" />
      {label}
    </p>
  );
}

export function Empty({ children, testId = "empty" }: { children: ReactNode; testId?: string }) {
  return (
    <p data-testid={testId} className="rounded-md border border-dashed border-slate-300 px-3 py-6 text-center text-sm text-slate-500">
      {children}
    </p>
  );
}

export function Card({ title, children, testId, actions }: { title: ReactNode; children: ReactNode; testId?: string; actions?: ReactNode }) {
  return (
    <section data-testid={testId} className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm">
      <div className="mb-3 flex flex-wrap items-center justify-between gap-2">
        <h2 className="text-base font-semibold">{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function CopyButton({ text, label = "Copy", testId }: { text: string; label?: string; testId?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <Button
      variant="secondary"
      data-testid={testId}
      aria-label={`${label} to clipboard`}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setCopied(true);
          setTimeout(() => setCopied(false), 2000);
        } catch {
          setCopied(false);
        }
      }}
    >
      {copied ? "Copied" : label}
    </Button>
  );
}

export function CodeBlock({ text, testId, copyLabel }: { text: string; testId?: string; copyLabel?: string }) {
  return (
    <div className="space-y-2">
      <pre data-testid={testId} className="overflow-x-auto whitespace-pre-wrap break-all rounded-md bg-slate-900 p-3 font-mono text-xs text-slate-100">
        {text}
      </pre>
      <CopyButton text={text} label={copyLabel ?? "Copy"} testId={testId ? `${testId}-copy` : undefined} />
    </div>
  );
}

/** The loading, error and empty states of a loaded list, shown the same way on every page. */
export function ListStates<T>({ state, name, empty }: { state: { data: T[] | null; loading: boolean; error: string | null }; name: string; empty: string }) {
  return (
    <>
      {state.loading && !state.data ? <Loading label={`Loading ${name}…`} /> : null}
      {state.error ? <ErrorBox message={state.error} testId={`${name}-error`} /> : null}
      {state.data && state.data.length === 0 ? <Empty testId={`${name}-empty`}>{empty}</Empty> : null}
    </>
  );
}
