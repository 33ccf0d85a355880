"""Helpers shared by the tests and the reliability bench (`python -m bench.reliability`).

Everything imports them by one name, `tests.support.<module>` (tests/ is a package, and pytest puts
the repository root on sys.path): a second name for the same file would load it twice.
"""
