"""Helpers only the tests use (the real third-party servers of the remote tests). What the tests
share with the reliability soaks lives in bench/support/.
"""
