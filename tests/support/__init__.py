"""Helpers only the tests use: the real third-party servers of the remote tests, `until`, the
`jarvis` subprocess runner. What the tests share with the reliability soaks lives in bench/support/.

Everything imports them by one name, `tests.support.<module>` (tests/ is a package, and pytest puts
the repository root on sys.path): a second name for the same file would load it twice.
"""
