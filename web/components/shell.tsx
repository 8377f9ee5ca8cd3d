"use client";

import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useEffect, useState, type ReactNode } from "react";
import { logout } from "@/lib/api";
import { useSession } from "./session";
import { Button, ErrorBox, Loading } from "./ui";

const NAV = [
  { href: "/", label: "Overview" },
  { href: "/profiles/", label: "Profiles" },
  { href: "/servers/", label: "Servers" },
  { href: "/credentials/", label: "Credentials" },
  { href: "/connections/", label: "Connections" },
  { href: "/audit/", label: "Audit" },
  { href: "/users/", label: "Users", adminOnly: true },
];

/** The signed-in frame: navigation, the user, logout; sends anonymous visitors to /login. */
export function Shell({ title, children }: { title: string; children: ReactNode }) {
  const { user, loading, error, setUser } = useSession();
  const router = useRouter();
  const pathname = usePathname();
  const [menuOpen, setMenuOpen] = useState(false);

  useEffect(() => {
    if (!loading && !user && !error) router.replace("/login/");
  }, [loading, user, error, router]);

  if (loading) {
    return (
      <main className="mx-auto max-w-5xl p-4">
        <Loading label="Checking your session…" />
      </main>
    );
  }
  if (error) {
    return (
      <main className="mx-auto max-w-5xl p-4">
        <ErrorBox message={`Could not reach the gateway: ${error}`} />
      </main>
    );
  }
  if (!user) return null;

  return (
    <div className="min-h-screen">
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-5xl flex-wrap items-center justify-between gap-2 px-4 py-3">
          <Link href="/" className="rounded text-lg font-bold text-indigo-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500">
            Gig&apos;MCP
          </Link>
          <button
            type="button"
            className="rounded-md border border-slate-300 px-2 py-1 text-sm focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 md:hidden"
            aria-expanded={menuOpen}
            aria-controls="main-nav"
            onClick={() => setMenuOpen((open) => !open)}
          >
            Menu
          </button>
          <nav id="main-nav" aria-label="Main" className={`${menuOpen ? "flex" : "hidden"} w-full flex-col gap-1 md:flex md:w-auto md:flex-row md:flex-wrap md:items-center md:gap-3`}>
            {NAV.filter((item) => !item.adminOnly || user.role === "admin").map((item) => {
              const active = item.href === "/" ? pathname === "/" : pathname?.startsWith(item.href.replace(/\/$/, ""));
              return (
                <Link
                  key={item.href}
                  href={item.href}
                  data-testid={`nav-${item.label.toLowerCase()}`}
                  aria-current={active ? "page" : undefined}
                  className={`rounded px-2 py-1 text-sm focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 ${active ? "bg-indigo-50 font-semibold text-indigo-700" : "text-slate-700 hover:text-indigo-700"}`}
                >
                  {item.label}
                </Link>
              );
            })}
            <span data-testid="current-user" className="px-2 text-xs text-slate-500">
              {user.email} ({user.role})
            </span>
            <Button
              variant="secondary"
              data-testid="logout"
              onClick={async () => {
                try {
                  await logout();
                } finally {
                  setUser(null);
                  router.replace("/login/");
                }
              }}
            >
              Log out
            </Button>
          </nav>
        </div>
      </header>
      <main className="mx-auto max-w-5xl space-y-4 p-4">
        <h1 className="text-xl font-semibold">{title}</h1>
        {children}
      </main>
    </div>
  );
}
