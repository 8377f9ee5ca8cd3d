CREATE TABLE `credentials` (
	`server_name` text NOT NULL,
	`credential_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`type` text NOT NULL,
	`sealed` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`server_name`, `credential_id`, `tenant_id`),
	FOREIGN KEY (`tenant_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `credentials_tenant` ON `credentials` (`tenant_id`);--> statement-breakpoint
CREATE TABLE `placeholders` (
	`server_name` text NOT NULL,
	`credential_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`placeholder` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`server_name`, `credential_id`, `tenant_id`),
	FOREIGN KEY (`tenant_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `placeholders_placeholder_unique` ON `placeholders` (`placeholder`);--> statement-breakpoint
CREATE TABLE `sealed_blobs` (
	`name` text PRIMARY KEY NOT NULL,
	`sealed` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `servers` ADD `credentials` text DEFAULT '[]' NOT NULL;