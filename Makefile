# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
RUNTIME_VENV := .venv-runtime
AIRFLOW_PY := $(VENV)/bin/python
RUNTIME_PY := $(RUNTIME_VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)
export SM_EXPLAIN_RUNTIME_PYTHON := $(abspath $(RUNTIME_PY))
export SM_EXPLAIN_AIRFLOW_PYTHON := $(abspath $(AIRFLOW_PY))

.PHONY: setup test test-runtime test-airflow lint local-up local-down demo airflow seed-versions bench clean

setup: $(VENV)/.installed $(RUNTIME_VENV)/.installed

# uv when present, pip otherwise; each venv is rebuilt only when its requirements change.
define make_venv
	@if [ -n "$(UV)" ]; then \
	  [ -x $(1)/bin/python ] || $(UV) venv -q -p $(PYTHON) $(1); \
	  VIRTUAL_ENV=$(1) $(UV) pip install -q -r $(2); \
	else \
	  [ -x $(1)/bin/python ] || $(PYTHON) -m venv $(1); \
	  $(1)/bin/python -m pip install -q --upgrade pip; \
	  $(1)/bin/python -m pip install -q -r $(2); \
	fi
	@touch $(1)/.installed
endef

$(VENV)/.installed: requirements.txt
	$(call make_venv,$(VENV),requirements.txt)

$(RUNTIME_VENV)/.installed: include/runtime-requirements.txt
	$(call make_venv,$(RUNTIME_VENV),include/runtime-requirements.txt)

lint: setup
	$(VENV)/bin/ruff check .

# Runtime-side tests (local endpoint internals, staging, explanations) run in the runtime env;
# Airflow-side tests (operators, sensors, DAG, end to end) in the Airflow env.
test: setup
	$(VENV)/bin/ruff check .
	$(RUNTIME_PY) -m pytest --durations=10 tests/runtime
	$(AIRFLOW_PY) -m pytest --durations=10 tests/airflow

test-runtime: setup
	$(RUNTIME_PY) -m pytest --durations=10 tests/runtime

test-airflow: setup
	$(AIRFLOW_PY) -m pytest --durations=10 tests/airflow

local-up: setup
	$(AIRFLOW_PY) scripts/local_stack.py up

local-down:
	@if [ -x $(AIRFLOW_PY) ]; then $(AIRFLOW_PY) scripts/local_stack.py down; else $(PYTHON) scripts/local_stack.py down; fi

clean:
	rm -rf .local demo-output .pytest_cache

# Several distinct data set versions (seeded resamples of Adult) in the local S3, for backfills.
seed-versions: local-up
	set -a; . .local/stack.env; set +a; $(AIRFLOW_PY) scripts/seed_versions.py

# The whole DAG end to end on the local stack; the report and figures land in ./demo-output/.
demo: setup
	@$(MAKE) --no-print-directory local-up
	@set -a; . .local/stack.env; set +a; \
	  trap '$(AIRFLOW_PY) scripts/local_stack.py down' EXIT; \
	  $(AIRFLOW_PY) scripts/seed_versions.py && \
	  $(AIRFLOW_PY) scripts/run_dag_locally.py --logical-date 2026-11-22 --output demo-output

# The Airflow UI (airflow standalone) against the local stack, the AWS connection preconfigured.
airflow: local-up
	@eval "$$($(AIRFLOW_PY) scripts/airflow_local_env.py)"; \
	  export PATH="$(abspath $(VENV))/bin:$$PATH"; \
	  echo "Airflow home: $$AIRFLOW_HOME (UI on http://localhost:8080, password in standalone's output)"; \
	  airflow standalone

bench: setup
	$(RUNTIME_PY) bench/bench_endpoint.py
