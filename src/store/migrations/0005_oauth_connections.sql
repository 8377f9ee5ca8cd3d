CREATE TABLE `oauth_apps` (
	`vendor` text PRIMARY KEY NOT NULL,
	`client_id` text NOT NULL,
	`authorize_url` text,
	`token_url` text,
	`scopes` text,
	`pkce` integer,
	`client_secret` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `oauth_connections` (
	`vendor` text NOT NULL,
	`tenant_id` text NOT NULL,
	`status` text NOT NULL,
	`scopes` text NOT NULL,
	`expires_at` integer,
	`problem` text,
	`sealed` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`vendor`, `tenant_id`),
	FOREIGN KEY (`tenant_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `oauth_connections_tenant` ON `oauth_connections` (`tenant_id`);--> statement-breakpoint
CREATE TABLE `oauth_flows` (
	`state_hash` text PRIMARY KEY NOT NULL,
	`vendor` text NOT NULL,
	`tenant_id` text NOT NULL,
	`session_user_id` text,
	`sealed` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `oauth_flows_created` ON `oauth_flows` (`created_at`);