CREATE TABLE "credentials" (
	"server_name" text NOT NULL,
	"credential_id" text NOT NULL,
	"tenant_id" text NOT NULL,
	"type" text NOT NULL,
	"sealed" text NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	CONSTRAINT "credentials_server_name_credential_id_tenant_id_pk" PRIMARY KEY("server_name","credential_id","tenant_id")
);
--> statement-breakpoint
CREATE TABLE "placeholders" (
	"server_name" text NOT NULL,
	"credential_id" text NOT NULL,
	"tenant_id" text NOT NULL,
	"placeholder" text NOT NULL,
	"created_at" bigint NOT NULL,
	CONSTRAINT "placeholders_server_name_credential_id_tenant_id_pk" PRIMARY KEY("server_name","credential_id","tenant_id"),
	CONSTRAINT "placeholders_placeholder_unique" UNIQUE("placeholder")
);
--> statement-breakpoint
CREATE TABLE "sealed_blobs" (
	"name" text PRIMARY KEY NOT NULL,
	"sealed" text NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "servers" ADD COLUMN "credentials" text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE "credentials" ADD CONSTRAINT "credentials_tenant_id_users_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "placeholders" ADD CONSTRAINT "placeholders_tenant_id_users_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "credentials_tenant" ON "credentials" USING btree ("tenant_id");