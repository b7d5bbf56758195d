"""Background work: claiming due syncs and deliveries, embedded or in worker processes."""
