"""Benchmarks and stress runs; each module is a command (`python bench/<name>.py`)."""
