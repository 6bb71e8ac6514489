"""scripts/bench: benchmarks of esl-callback against the simulator (see bench/main.py)."""
