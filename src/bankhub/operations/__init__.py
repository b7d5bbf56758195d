"""The operator's endpoints: liveness, readiness and metrics (``docs/operations.md``)."""
