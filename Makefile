# `make demo` sets up and runs a demo contest round; `make test` sets up and runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,baselines]'
	$(BIN)/pip install -q --no-deps konlpy==0.6.0   # only its Korean text corpus is used (no Java needed)
	bash scripts/setup-sandbox.sh                    # bubblewrap: the process runtime's sandbox
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/suite.py --repeat 5 --readme
	$(BIN)/python bench/baselines.py

clean:
	rm -rf $(VENV) demo-state
