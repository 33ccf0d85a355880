"""Helpers shared by the reliability soaks (`python -m bench.reliability`) and the tests: settings
for a private run, greedy requests with bounded waits, a server thread, raw HTTP, the HTTP fuzz
cases and their oracle. They live here, outside the wheel, so the soaks import nothing from tests/;
the tests import them as `bench.support.<module>`.
"""
