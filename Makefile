# Two commands for a stranger with a fresh clone:  make reproduce  and  make test.
# Both build .venv from requirements.lock first (exact versions; torch 2.13.0 CPU).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all test reproduce quick bench lab clean clean-cache venv

all: test

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

reproduce: $(STAMP)
	$(PY) -m pgsom.pipeline --profile full

quick: $(STAMP)
	$(PY) -m pgsom.pipeline --profile quick

bench: $(STAMP)
	$(PY) -m pgsom bench

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

clean-cache:
	rm -rf results/cache
