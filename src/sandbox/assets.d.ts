// Files embedded with `import path from "…" with { type: "file" }` resolve to a path string.
declare module "*/gigmcp-bootstrap" {
  const path: string;
  export default path;
}
