"""`make reliability` / `python -m bench.reliability [--quick] [--scale X]`: the long versions of
the reliability tests, one module per kind of fault:

- models.py   hostile model files, header mutations, mutants handed to llama.cpp
- load.py     overload, cancel storm, unload/evict under load, a long run of requests
- storage.py  an unwritable data directory, kill -9 of a conversation writer
- http_fuzz.py  fuzzed requests against a real HTTP endpoint

__main__.py runs them all and prints ONE table (scenario, inputs tried, faults injected, handled
correctly, lost, crashes) and one JSON line. tests/test_reliability_*.py run short versions of the
same scenario functions.
"""
