"""Benchmarks (not tests): `make bench` / `jarvis bench`. Each figure is a ratio against a
baseline measured in the same run."""
