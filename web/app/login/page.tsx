"use client";

import { useRouter } from "next/navigation";
import { useEffect, useState, type FormEvent } from "react";
import { login } from "@/lib/api";
import { useSubmit } from "@/lib/use-submit";
import { useSession } from "@/components/session";
import { Button, ErrorBox, Field, inputClass } from "@/components/ui";

export default function LoginPage() {
  const { user, setUser } = useSession();
  const router = useRouter();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { busy, error, run } = useSubmit();
  // Until the page's script runs, the form must not submit natively (the password would leave in a URL).
  const [ready, setReady] = useState(false);
  useEffect(() => setReady(true), []);

  useEffect(() => {
    if (user) router.replace("/");
  }, [user, router]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    await run(async () => {
      const signedIn = await login(email.trim(), password);
      setPassword("");
      setUser(signedIn);
      router.replace("/");
    });
  }

  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <div className="w-full max-w-sm space-y-6 rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
        <div>
          <h1 className="text-xl font-semibold">Sign in to Gig&apos;MCP</h1>
          <p className="text-sm text-slate-500">The security-first MCP gateway.</p>
        </div>
        <form onSubmit={submit} method="post" className="space-y-4" data-testid="login-form" aria-label="Sign in">
          <Field label="Email" htmlFor="login-email">
            <input
              id="login-email"
              name="email"
              type="email"
              autoComplete="username"
              required
              data-testid="login-email"
              className={inputClass}
              value={email}
              onChange={(event) => setEmail(event.target.value)}
            />
          </Field>
          <Field label="Password" htmlFor="login-password">
            <input
              id="login-password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              data-testid="login-password"
              className={inputClass}
              value={password}
              onChange={(event) => setPassword(event.target.value)}
            />
          </Field>
          {error ? <ErrorBox message={error} testId="login-error" /> : null}
          <Button type="submit" className="w-full" disabled={busy || !ready} data-testid="login-submit">
            {busy ? "Signing in…" : "Sign in"}
          </Button>
        </form>
        <div className="border-t border-slate-200 pt-4 text-center">
          <a href="/api/v1/oidc/login" data-testid="login-oidc" className="text-sm font-medium text-indigo-700 underline-offset-2 hover:underline">
            Sign in with your provider
          </a>
        </div>
      </div>
    </main>
  );
}
