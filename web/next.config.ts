import type { NextConfig } from "next";

// A static export: the gateway serves web/out/ from its own origin, so every API call is
// a relative /api/v1/... request and nothing needs a Next.js server at runtime.
const config: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default config;
