# One source of truth for how privrec is built, checked and run: CI, the README and developers all call these.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: venv demo test lint data clean kotlin-tools bench-flower docs

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The constraints file is the working set; torch==2.13.0 resolves to the CPU wheel on local disk.
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev,docs]'
	@touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(VENV)/bin/privrec data fetch

demo: data
	$(VENV)/bin/privrec demo

# The Android sample's pure-Kotlin core is compiled and tested by tests/samples (Debian kotlin 1.3 + junit4).
kotlin-tools:
	@if ! command -v kotlinc >/dev/null || [ ! -f /usr/share/java/junit4.jar ]; then \
	  apt-get update && apt-get install -y --no-install-recommends kotlin junit4; fi

# tflite-runtime 2.14.0 (the last standalone TFLite interpreter) needs numpy < 2, so it gets its own venv;
# tests/export/test_tflite.py runs tests/export/tflite214_parity.py in it (no privrec installed there).
TFLITE214_VENV := .venv-tflite214
$(TFLITE214_VENV)/.installed:
	@test -x $(TFLITE214_VENV)/bin/python || $(PYTHON) -m venv $(TFLITE214_VENV)
	$(TFLITE214_VENV)/bin/python -m pip install --quiet tflite-runtime==2.14.0 numpy==1.26.4 safetensors==0.8.0
	@touch $@

# Optional bench extra (pyproject's `flower` extra): Flower's SecAgg+ for `privrec bench aggregation`'s comparison.
# flwr pins its own fastapi/protobuf/typer, so it gets its own venv; privrec is not installed there.
FLOWER_VENV := .venv-flwr
$(FLOWER_VENV)/.installed:
	@test -x $(FLOWER_VENV)/bin/python || $(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_VENV)/bin/python -m pip install --quiet flwr==1.42.0 numpy==2.4.6 \
	  cryptography==50.0.2 pycryptodome==3.24.1 protobuf==6.33.6 grpcio==1.85.3
	@touch $@

bench-flower: $(FLOWER_VENV)/.installed

# privrec as a Flower App (flower_app/, privrec.flower) and tests/flower: flwr 1.42 needs protobuf 6, fastapi 0.138
# and typer 0.20, which privrec's own pins exclude, so Flower's engines run in their own venv: flwr[simulation] and
# what the ServerApp and ClientApp import, at flower_app/constraints.txt's versions, then privrec itself without
# its dependencies (editable). The device and server path only: no torch (privrec[train]), TensorFlow or coremltools
# (Flower's Ray backend would import them in every actor). tests/flower compute their in-process reference with
# .venv's Python (PRIVREC_REFERENCE_PYTHON).
FLOWER_APP_VENV := .venv-flower
FLOWER_APP_PACKAGES := 'flwr[simulation]' numpy safetensors cryptography typer rich tqdm scipy dp-accounting \
  onnx onnxscript onnxruntime ml_dtypes httpx pytest pytest-xdist hypothesis
$(FLOWER_APP_VENV)/.installed: flower_app/constraints.txt pyproject.toml
	@test -x $(FLOWER_APP_VENV)/bin/python || $(PYTHON) -m venv $(FLOWER_APP_VENV)
	$(FLOWER_APP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOWER_APP_VENV)/bin/python -m pip install --quiet -c flower_app/constraints.txt $(FLOWER_APP_PACKAGES)
	$(FLOWER_APP_VENV)/bin/python -m pip install --quiet --no-deps -e .
	@touch $@

.PHONY: flower-venv
flower-venv: $(FLOWER_APP_VENV)/.installed

# The web sample: its npm packages exactly as web_sample/package-lock.json pins them (`npm ci`), then the static
# site in web_sample/dist/. Node 20.19+ must be on the PATH (Vite 8 needs it; Debian 12's own nodejs is 18).
.PHONY: web chromium
WEB := web_sample
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	@command -v node >/dev/null || { echo "node not found: install Node.js 20.19+ for the web sample" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund
	@touch $@

web: $(WEB)/node_modules/.package-lock.json
	cd $(WEB) && npm run build

# Debian's Chromium drives the web sample's tests and the browser latency row (playwright-core never downloads one).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; fi

# The documentation site into build/site; mkdocs-jupyter executes the tutorial notebook (docs/tutorial.py, through
# nbclient) during the build, so a failing cell fails it. `mkdocs serve` browses it.
docs: data
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: lint data kotlin-tools $(TFLITE214_VENV)/.installed web chromium docs $(FLOWER_APP_VENV)/.installed
	PRIVREC_REQUIRE_KOTLIN=1 PRIVREC_REQUIRE_TFLITE214=1 PRIVREC_REQUIRE_WEB=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup
	# tests/flower again in Flower's venv (in .venv they skip: no flwr there).
	PRIVREC_REQUIRE_FLOWER=1 PRIVREC_REFERENCE_PYTHON=$(CURDIR)/$(PY) $(FLOWER_APP_VENV)/bin/python -m pytest -p no:cacheprovider tests/flower

# ruff over every Python file, mypy --strict over the package (sdk/, export/, runtime/, server_stub/ are its
# subpackages through privrec/'s links).
lint: $(STAMP)
	$(VENV)/bin/ruff check privrec sdk export runtime server_stub tests docs/_hooks docs/scripts
	$(VENV)/bin/mypy privrec

clean:
	rm -rf $(VENV) $(TFLITE214_VENV) $(FLOWER_VENV) $(FLOWER_APP_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info \
	  $(WEB)/node_modules $(WEB)/dist
