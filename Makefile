# One source of truth for how privrec is built, checked and run: CI, the README and developers all call these.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: venv demo test lint data clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The constraints file is the working set; torch==2.13.0 resolves to the CPU wheel on local disk.
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(VENV)/bin/privrec data fetch

demo: data
	$(VENV)/bin/privrec demo

test: data
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/ruff check privrec sdk export runtime server_stub tests
	$(VENV)/bin/mypy privrec

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
