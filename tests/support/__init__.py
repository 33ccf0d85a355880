"""Helpers shared by the tests and the reliability bench (`python -m bench.reliability`).

Tests import them as `support.<module>` (pytest puts tests/ on sys.path); the bench, run from the
repository root, as `tests.support.<module>`.
"""
