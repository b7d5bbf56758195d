"""The audit log: who did what to which data, and when."""
