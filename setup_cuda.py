"""`python setup_cuda.py [--check | --dry-run]` in a checkout: the same as `jarvis setup-cuda`, whose
code is jarvis/setup_cuda.py (installed with JARVIS)."""

import sys

from jarvis.setup_cuda import main

if __name__ == "__main__":
    sys.exit(main())
