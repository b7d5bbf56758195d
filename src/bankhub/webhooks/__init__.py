"""Webhook delivery: Standard Webhooks signing, SSRF guard and the HTTP sender."""
