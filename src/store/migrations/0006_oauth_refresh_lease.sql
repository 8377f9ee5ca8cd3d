ALTER TABLE `oauth_apps` ADD `revoke_url` text;--> statement-breakpoint
ALTER TABLE `oauth_connections` ADD `version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `oauth_connections` ADD `refreshing_until` integer;