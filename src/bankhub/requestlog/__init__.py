"""The API request log of each app: every partner API call (method, route template, status,
latency, request id, error code, credential), kept in memory on the request path and written in
batches off it, for the dashboard's request log page (docs/dashboard.md)."""
