# Two commands for a stranger with a fresh clone:  make reproduce  and  make test.
# Both build .venv from requirements.lock first (exact versions; torch 2.13.0 CPU).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNEL_JSON := $(VENV)/share/jupyter/kernels/python3/kernel.json
KERNEL_ENV := $(VENV)/.kernel-env

# Portable numerics (pgsom/numerics.py, PORTABLE_ENV): exported to every recipe below and to
# everything it starts (papermill kernels, spawn workers, pytest), before numpy, torch or MKL
# initialise. Nothing is exported when the shell asks for PGSOM_NUMERICS=native.
NUMERICS_ENV := $(shell $(PYTHON) pgsom/numerics.py --make 2>/dev/null || python3 pgsom/numerics.py --make)
$(foreach kv,$(NUMERICS_ENV),$(eval export $(kv)))

.PHONY: all test reproduce quick verify bench lab clean clean-cache venv

all: test

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH, or run: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# the venv's python3 kernel carries the portable numerics in its kernel.json (JupyterLab too)
$(KERNEL_ENV): $(STAMP) pgsom/numerics.py pgsom/jupyter_kernel.py
	$(PY) pgsom/numerics.py --install-kernel $(KERNEL_JSON)
	touch $(KERNEL_ENV)

test: $(KERNEL_ENV)
	$(PY) -m pytest -q

reproduce: $(KERNEL_ENV)
	$(PY) -m pgsom.pipeline --profile full

quick: $(KERNEL_ENV)
	$(PY) -m pgsom.pipeline --profile quick

# cold rebuild into results/verify/ and a byte comparison with the committed outputs
verify: $(KERNEL_ENV)
	$(PY) -m pgsom.verify

bench: $(KERNEL_ENV)
	$(PY) -m pgsom bench --cold-reproduce --readme README.md

lab: $(KERNEL_ENV)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

clean-cache:
	rm -rf results/cache
