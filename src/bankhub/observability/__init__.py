"""What an operator sees of a running bankhub: log lines, metrics, health and readiness."""
