"""`python -m jarvis.bench.llama_cpp_server ARGS`: llama-cpp-python's own server (`python -m
llama_cpp.server ARGS`, the third-party remote of the remote benches and tests), with llama.cpp's
extra weight buffers chosen as JARVIS chooses them (engine.weight_repacking "auto"): off on CPUs
with Intel AMX, where the pinned llama.cpp's AMX matrix multiply segfaults on the first prompt.
Its server has no flag for that, so the default model parameters it starts from are set here.
"""

from __future__ import annotations

import llama_cpp.llama_cpp as raw

from jarvis.engine.backend import extra_buffers_allowed

_defaults = raw.llama_model_default_params


def _model_params():
    params = _defaults()
    params.use_extra_bufts = extra_buffers_allowed()
    return params


if __name__ == "__main__":
    raw.llama_model_default_params = _model_params
    from llama_cpp.server.__main__ import main

    main()
