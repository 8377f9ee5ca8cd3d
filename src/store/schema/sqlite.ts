/** The schema's SQLite tables (drizzle-kit reads this file: drizzle.config.ts). */
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { defineTables, type ColumnBuilders } from "./tables.ts";

// SQLite integers are 64-bit and booleans are integers; JSON is text in json mode.
const builders = {
  table: sqliteTable,
  text,
  integer: (name: string) => integer(name),
  bigInteger: (name: string) => integer(name),
  boolean: (name: string) => integer(name, { mode: "boolean" }),
  json: (name: string) => text(name, { mode: "json" }),
  serialId: (name: string) => integer(name).primaryKey({ autoIncrement: true }),
  index,
  uniqueIndex,
  primaryKey,
} as unknown as ColumnBuilders;

export const { users, profiles, profileTokens, servers, profileServers, auditEvents, auditHead, credentials, placeholders, sealedBlobs, meta, sessions, apiTokens, oauthApps, oauthConnections, oauthFlows } =
  defineTables(builders);
