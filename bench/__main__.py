"""`python -m bench` from a checkout: the same tables as the installed `jarvis bench`."""

import sys

from jarvis.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
