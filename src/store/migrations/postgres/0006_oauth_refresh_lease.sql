ALTER TABLE "oauth_apps" ADD COLUMN "revoke_url" text;--> statement-breakpoint
ALTER TABLE "oauth_connections" ADD COLUMN "version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "oauth_connections" ADD COLUMN "refreshing_until" bigint;