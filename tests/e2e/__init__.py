"""End-to-end tests: the real server in a subprocess, driven by a browser or curl."""
