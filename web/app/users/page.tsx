"use client";

import { useState, type FormEvent } from "react";
import { Shell } from "@/components/shell";
import { useSession } from "@/components/session";
import { Button, Card, Cell, ErrorBox, Field, inputClass, ListStates, Notice, Row, Table } from "@/components/ui";
import { api, enc, errorMessage, formatTime, type User } from "@/lib/api";
import { useLoad } from "@/lib/use-load";
import { useSubmit } from "@/lib/use-submit";

interface UserRow extends User {
  createdAt: number;
}
type Role = User["role"];

export default function UsersPage() {
  return (
    <Shell title="Users">
      <UsersBody />
    </Shell>
  );
}

function UsersBody() {
  const { user } = useSession();
  if (user?.role !== "admin") {
    return (
      <div role="status" data-testid="users-admins-only" className="rounded-md border border-slate-300 bg-white px-4 py-6 text-center text-sm text-slate-600">
        Admins only: ask an administrator to manage users.
      </div>
    );
  }
  return <ManageUsers selfId={user.id} />;
}

function ManageUsers({ selfId }: { selfId: string }) {
  const users = useLoad(() => api<UserRow[]>("GET", "/users"));
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function changeRole(row: UserRow, role: Role) {
    setError(null);
    setNotice(null);
    try {
      await api("PATCH", `/users/${enc(row.id)}`, { role });
      setNotice(`${row.email} is now ${role === "admin" ? "an admin" : "a member"}.`);
    } catch (caught) {
      setError(`Could not change the role of ${row.email}: ${errorMessage(caught)}`);
    }
    await users.reload();
  }

  return (
    <>
      <CreateUser onCreated={users.reload} />
      <Card title="Users" testId="users-card">
        <ListStates state={users} name="users" empty="No users." />
        {error ? <ErrorBox message={error} testId="users-role-error" /> : null}
        {notice ? <Notice testId="users-role-notice">{notice}</Notice> : null}
        {users.data && users.data.length > 0 ? (
          <Table label="Users" testId="users-table" columns={["Email", "Role", "Created"]}>
            {users.data.map((row) => (
              <Row key={row.id} testId="user-row">
                <Cell className="break-all">{row.email}</Cell>
                <Cell>
                  <label className="sr-only" htmlFor={`role-${row.id}`}>
                    Role of {row.email}
                  </label>
                  <select
                    id={`role-${row.id}`}
                    data-testid={`user-role-${row.email}`}
                    className={`${inputClass} max-w-36`}
                    value={row.role}
                    disabled={row.id === selfId}
                    title={row.id === selfId ? "admins cannot demote themselves" : undefined}
                    onChange={(event) => void changeRole(row, event.target.value as Role)}
                  >
                    <option value="member">member</option>
                    <option value="admin">admin</option>
                  </select>
                </Cell>
                <Cell className="whitespace-nowrap text-xs text-slate-500">{formatTime(row.createdAt)}</Cell>
              </Row>
            ))}
          </Table>
        ) : null}
      </Card>
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => Promise<void> }) {
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [password, setPassword] = useState("");
  const { busy, error, run } = useSubmit();
  const [created, setCreated] = useState<string | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setCreated(null);
    await run(async () => {
      const user = await api<UserRow>("POST", "/users", { email: email.trim(), role, ...(password ? { password } : {}) });
      setCreated(`Created ${user.email} (${user.role})${password ? "" : ": they sign in through the identity provider"}.`);
      setEmail("");
      setPassword("");
      await onCreated();
    });
  }

  return (
    <Card title="New user">
      <form onSubmit={submit} className="grid gap-3 sm:grid-cols-3" data-testid="create-user-form" aria-label="Create a user" autoComplete="off">
        <Field label="Email" htmlFor="user-email">
          <input id="user-email" data-testid="user-email" type="email" required maxLength={320} className={inputClass} value={email} onChange={(event) => setEmail(event.target.value)} />
        </Field>
        <Field label="Role" htmlFor="user-role">
          <select id="user-role" data-testid="user-role" className={inputClass} value={role} onChange={(event) => setRole(event.target.value as Role)}>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        </Field>
        <Field label="Password (optional)" htmlFor="user-password" hint="leave empty for sign-in through the identity provider only">
          <input id="user-password" data-testid="user-password" type="password" autoComplete="new-password" maxLength={1024} className={inputClass} value={password} onChange={(event) => setPassword(event.target.value)} />
        </Field>
        <div className="space-y-2 sm:col-span-3">
          {error ? <ErrorBox message={error} testId="create-user-error" /> : null}
          {created ? <Notice testId="create-user-done">{created}</Notice> : null}
          <Button type="submit" disabled={busy} data-testid="create-user-submit">
            {busy ? "Creating…" : "Create user"}
          </Button>
        </div>
      </form>
    </Card>
  );
}
