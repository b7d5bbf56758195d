"""Data lifecycle: how long bankhub keeps what it holds, and erasing it on request."""
