"""bankhub's benchmarks: each one measures bankhub and a baseline side by side, in one run."""
