"""`python -m jarvis.bench.llama_cpp_server ARGS`: llama-cpp-python's own server (`python -m
llama_cpp.server ARGS`, the third-party remote of the remote benches and tests), with llama.cpp's
extra weight buffers chosen as JARVIS chooses them (engine.weight_repacking "auto"): off where the
llama.cpp build runs AMX kernels, whose matrix multiply segfaults on the first prompt. Neither its
server nor `llama_cpp.Llama` has a parameter for that, so `same_weight_buffers()` sets the default
model parameters they start from (the engine bench's raw baseline calls it too).
"""

from __future__ import annotations

import llama_cpp.llama_cpp as raw

from jarvis.engine.backend import extra_buffers_allowed

_defaults = raw.llama_model_default_params


def _model_params():
    params = _defaults()
    params.use_extra_bufts = extra_buffers_allowed()
    return params


def same_weight_buffers() -> None:
    """Make every `llama_cpp.Llama` made from now on in this process load as JARVIS's engine does."""
    raw.llama_model_default_params = _model_params


if __name__ == "__main__":
    same_weight_buffers()
    from llama_cpp.server.__main__ import main

    main()
