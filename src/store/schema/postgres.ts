/** The schema's Postgres tables (drizzle-kit reads this file: drizzle.postgres.config.ts). */
import { bigint, boolean, customType, index, integer, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { defineTables, type ColumnBuilders } from "./tables.ts";

// JSON as plain text, as in SQLite: no json/jsonb operators in core, and the copy between dialects is verbatim.
const jsonText = customType<{ data: unknown; driverData: string }>({
  dataType: () => "text",
  toDriver: (value) => JSON.stringify(value),
  fromDriver: (value) => JSON.parse(value),
});

// Postgres integer is 32-bit: millisecond timestamps need bigint, read back as numbers.
const builders: ColumnBuilders = {
  table: pgTable,
  text,
  integer: (name) => integer(name),
  bigInteger: (name) => bigint(name, { mode: "number" }),
  boolean: (name) => boolean(name),
  json: ((name: string) => jsonText(name)) as unknown as ColumnBuilders["json"],
  serialId: (name) => bigint(name, { mode: "number" }).primaryKey().generatedByDefaultAsIdentity(),
  index,
  uniqueIndex,
  primaryKey,
};

export const { users, profiles, profileTokens, servers, profileServers, auditEvents, auditHead, credentials, placeholders, sealedBlobs, meta, sessions, apiTokens, oauthApps, oauthConnections, oauthFlows } =
  defineTables(builders);
