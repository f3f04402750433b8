"""Deterministic synthetic data for the benchmarks: same seed and scale, same rows."""
