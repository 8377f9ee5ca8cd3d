"use client";

import { Shell } from "@/components/shell";
import { useSession } from "@/components/session";
import { ListStates } from "@/components/ui";
import { api, formatTime } from "@/lib/api";
import { useLoad } from "@/lib/use-load";

interface UserRow {
  id: string;
  email: string;
  role: "admin" | "member";
  createdAt: number;
}

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
  return <UsersTable />;
}

function UsersTable() {
  const users = useLoad(() => api<UserRow[]>("GET", "/users"));
  if (!users.data || users.data.length === 0 || users.error) return <ListStates state={users} name="users" empty="No users." />;
  return (
    <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
      <table className="w-full text-left text-sm" data-testid="users-table">
        <thead className="bg-slate-50 text-xs uppercase text-slate-500">
          <tr>
            <th scope="col" className="px-3 py-2">Email</th>
            <th scope="col" className="px-3 py-2">Role</th>
            <th scope="col" className="px-3 py-2">Created</th>
          </tr>
        </thead>
        <tbody>
          {users.data.map((row) => (
            <tr key={row.id} className="border-t border-slate-100" data-testid="user-row">
              <td className="px-3 py-2">{row.email}</td>
              <td className="px-3 py-2">{row.role}</td>
              <td className="px-3 py-2 text-xs text-slate-500">{formatTime(row.createdAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
