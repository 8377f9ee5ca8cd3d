"use client";

import { useRouter } from "next/navigation";
import { useEffect } from "react";
import { useSession } from "@/components/session";
import { ErrorBox, Loading } from "@/components/ui";

export default function Overview() {
  const { user, loading, error } = useSession();
  const router = useRouter();
  useEffect(() => {
    if (loading || error) return;
    router.replace(user ? "/profiles/" : "/login/");
  }, [user, loading, error, router]);
  return <main className="mx-auto max-w-5xl p-4">{error ? <ErrorBox message={`Could not reach the gateway: ${error}`} /> : <Loading />}</main>;
}
