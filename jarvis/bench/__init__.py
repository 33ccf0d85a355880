"""Benchmarks that ship with JARVIS, every one reachable from `jarvis bench` (suites.py lists them)."""
