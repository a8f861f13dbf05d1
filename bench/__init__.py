"""Benchmarks of vicidial-cdc: ``python -m bench.run --help`` (see README, "Performance")."""
