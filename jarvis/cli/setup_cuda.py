"""`jarvis setup-cuda [--check | --dry-run]`: find an NVIDIA driver and a CUDA toolkit, then rebuild
llama-cpp-python with GPU offload (jarvis/setup_cuda.py)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from jarvis import setup_cuda

    p = sub.add_parser("setup-cuda", help="rebuild llama-cpp-python for an NVIDIA GPU (--check: what it would do)",
                       description=setup_cuda.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    setup_cuda.add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from jarvis.setup_cuda import run as setup

    return setup(args)
