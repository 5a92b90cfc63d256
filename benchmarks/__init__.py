"""Benchmark scripts that print ratio tables (ours vs a baseline, measured in the same run)."""
