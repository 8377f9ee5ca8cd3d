CREATE TABLE "oauth_apps" (
	"vendor" text PRIMARY KEY NOT NULL,
	"client_id" text NOT NULL,
	"authorize_url" text,
	"token_url" text,
	"scopes" text,
	"pkce" boolean,
	"client_secret" text,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oauth_connections" (
	"vendor" text NOT NULL,
	"tenant_id" text NOT NULL,
	"status" text NOT NULL,
	"scopes" text NOT NULL,
	"expires_at" bigint,
	"problem" text,
	"sealed" text NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	CONSTRAINT "oauth_connections_vendor_tenant_id_pk" PRIMARY KEY("vendor","tenant_id")
);
--> statement-breakpoint
CREATE TABLE "oauth_flows" (
	"state_hash" text PRIMARY KEY NOT NULL,
	"vendor" text NOT NULL,
	"tenant_id" text NOT NULL,
	"session_user_id" text,
	"sealed" text NOT NULL,
	"created_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "oauth_connections" ADD CONSTRAINT "oauth_connections_tenant_id_users_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "oauth_flows" ADD CONSTRAINT "oauth_flows_tenant_id_users_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "oauth_connections_tenant" ON "oauth_connections" USING btree ("tenant_id");--> statement-breakpoint
CREATE INDEX "oauth_flows_created" ON "oauth_flows" USING btree ("created_at");