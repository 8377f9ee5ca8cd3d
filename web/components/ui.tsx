"use client";

import * as AlertDialog from "@radix-ui/react-alert-dialog";
import * as Dialog from "@radix-ui/react-dialog";
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

/** Every table of the dashboard: scrolls sideways on narrow screens instead of squeezing. */
export function Table({ columns, children, testId, label }: { columns: ReactNode[]; children: ReactNode; testId?: string; label: string }) {
  return (
    // relative: keeps screen-reader-only headers (absolutely positioned) inside the scrolling box.
    <div className="relative overflow-x-auto rounded-lg border border-slate-200 bg-white">
      <table className="w-full text-left text-sm" data-testid={testId} aria-label={label}>
        <thead className="bg-slate-50 text-xs uppercase text-slate-500">
          <tr>
            {columns.map((column, index) => (
              <th key={index} scope="col" className="whitespace-nowrap px-3 py-2">
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

export function Row({ children, testId }: { children: ReactNode; testId?: string }) {
  return (
    <tr className="border-t border-slate-100 align-top" data-testid={testId}>
      {children}
    </tr>
  );
}

export function Cell({ children, className = "" }: { children?: ReactNode; className?: string }) {
  return <td className={`px-3 py-2 ${className}`}>{children}</td>;
}

const BADGE_TONES = {
  green: "bg-emerald-100 text-emerald-800",
  red: "bg-red-100 text-red-800",
  amber: "bg-amber-100 text-amber-800",
  indigo: "bg-indigo-100 text-indigo-800",
  slate: "bg-slate-100 text-slate-700",
};

export function Badge({ tone, children, testId, title }: { tone: keyof typeof BADGE_TONES; children: ReactNode; testId?: string; title?: string }) {
  return (
    <span data-testid={testId} title={title} className={`inline-block whitespace-nowrap rounded px-2 py-0.5 text-xs font-semibold ${BADGE_TONES[tone]}`}>
      {children}
    </span>
  );
}

/** Sealed servers never see credentials (the proxy injects them); entrusted ones receive them. */
export function TierBadge({ tier }: { tier: string }) {
  return (
    <Badge tone={tier === "sealed" ? "green" : "amber"} testId="tier-badge" title={tier === "sealed" ? "never sees its credentials" : "receives its credentials"}>
      {tier}
    </Badge>
  );
}

const overlayClass = "fixed inset-0 z-40 bg-slate-900/50";
const dialogClass =
  "fixed left-1/2 top-1/2 z-50 max-h-[85vh] w-[calc(100%-2rem)] max-w-lg -translate-x-1/2 -translate-y-1/2 space-y-4 overflow-y-auto rounded-lg bg-white p-5 shadow-xl focus:outline-none";

/** A modal dialog (Radix: focus trapped inside, Escape closes, focus returns to the opener). */
export function Modal({ open, onOpenChange, title, description, children, testId }: { open: boolean; onOpenChange(open: boolean): void; title: string; description?: string; children: ReactNode; testId?: string }) {
  return (
    <Dialog.Root open={open} onOpenChange={onOpenChange}>
      <Dialog.Portal>
        <Dialog.Overlay className={overlayClass} />
        <Dialog.Content className={dialogClass} data-testid={testId}>
          <Dialog.Title className="text-lg font-semibold">{title}</Dialog.Title>
          <Dialog.Description className={description ? "text-sm text-slate-600" : "sr-only"}>{description ?? title}</Dialog.Description>
          {children}
        </Dialog.Content>
      </Dialog.Portal>
    </Dialog.Root>
  );
}

/** A button that asks before doing something that cannot be undone. */
export function ConfirmButton({
  label,
  title,
  description,
  confirmLabel,
  onConfirm,
  testId,
  ariaLabel,
  disabled,
  variant = "secondary",
}: {
  label: string;
  title: string;
  description: string;
  confirmLabel: string;
  onConfirm(): void | Promise<void>;
  testId?: string;
  ariaLabel?: string;
  disabled?: boolean;
  variant?: "secondary" | "danger";
}) {
  return (
    <AlertDialog.Root>
      <AlertDialog.Trigger asChild>
        <Button variant={variant} data-testid={testId} aria-label={ariaLabel} disabled={disabled}>
          {label}
        </Button>
      </AlertDialog.Trigger>
      <AlertDialog.Portal>
        <AlertDialog.Overlay className={overlayClass} />
        <AlertDialog.Content className={dialogClass} data-testid="confirm-dialog">
          <AlertDialog.Title className="text-lg font-semibold">{title}</AlertDialog.Title>
          <AlertDialog.Description className="text-sm text-slate-600">{description}</AlertDialog.Description>
          <div className="flex flex-wrap justify-end gap-2">
            <AlertDialog.Cancel asChild>
              <Button variant="secondary">Cancel</Button>
            </AlertDialog.Cancel>
            <AlertDialog.Action asChild>
              <Button variant="danger" data-testid="confirm-action" onClick={() => void onConfirm()}>
                {confirmLabel}
              </Button>
            </AlertDialog.Action>
          </div>
        </AlertDialog.Content>
      </AlertDialog.Portal>
    </AlertDialog.Root>
  );
}
