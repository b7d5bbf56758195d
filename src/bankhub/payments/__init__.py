"""Payment initiation: single credit transfers and batches, authorised on the connect page."""
