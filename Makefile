# regime-nb: `make demo` and `make test` each set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NB_WORKERS ?= 2
PYTEST_WORKERS ?= 2

.PHONY: setup demo test check-sync test-nbs test-py test-slow bench lab clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/regime-nb demo

# regime_nb/ must be exactly what nbdev-export makes of the notebooks, and the notebooks must be clean.
check-sync: setup
	@tmp=$$(mktemp -d); cp -r nbs regime_nb $$tmp/; \
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean; \
	ok=1; \
	diff -r -q -x __pycache__ $$tmp/regime_nb regime_nb || { echo "regime_nb/ was not what nbdev-export makes of nbs/: it is now re-exported; review and commit"; ok=0; }; \
	diff -r -q -x .ipynb_checkpoints $$tmp/nbs nbs || { echo "notebooks were not clean: nbdev-clean has now cleaned them; review and commit"; ok=0; }; \
	rm -rf $$tmp; test $$ok = 1 && echo "check-sync: package matches notebooks; notebooks are clean"

test-nbs: setup
	$(BIN)/nbdev-test --n-workers $(NB_WORKERS)

test-py: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m "not slow" --durations=20 tests

# evaluations too slow for every change (issue 15's model-choice protocol on the S&P 500 and the NASDAQ: 7-18 minutes each)
test-slow: setup
	$(BIN)/python -m pytest -q -s -m slow tests

test: check-sync test-nbs test-py

bench: setup
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# JupyterLab on localhost with its token (printed in the URL); as root (a container) it needs --allow-root.
LAB_PORT ?= 8888
lab: setup
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --no-browser --notebook-dir=nbs $$(test "$$(id -u)" = 0 && echo --allow-root)

clean:
	rm -rf output .pytest_cache
