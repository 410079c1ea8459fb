# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
RUNTIME_VENV := .venv-runtime
AIRFLOW_PY := $(VENV)/bin/python
RUNTIME_PY := $(RUNTIME_VENV)/bin/python
# The local endpoint's environments of the built-in XGBoost images (sm_local.image_envs), one per version.
IMAGE_CACHE := .venv-images
export SM_LOCAL_IMAGE_CACHE := $(abspath $(IMAGE_CACHE))
DEFAULT_IMAGE := 1.7-1
UV := $(shell command -v uv 2>/dev/null)
export SM_EXPLAIN_RUNTIME_PYTHON := $(abspath $(RUNTIME_PY))
export SM_EXPLAIN_AIRFLOW_PYTHON := $(abspath $(AIRFLOW_PY))

.PHONY: setup constraints env-sizes test-fast test test-runtime test-airflow lint local-up local-down demo airflow seed-versions bench clean clean-images reliability

setup: $(VENV)/.installed $(RUNTIME_VENV)/.installed $(IMAGE_CACHE)/.default-pulled
	@# setuptools' editable install (and any in-tree build) leaves plugins/sm_explain_ops.egg-info behind, and plugins/
	@# is on sys.path (the editable .pth, Airflow's plugins folder): Airflow would find the provider's entry points twice
	@# and report its UI plugin "already registered" as a plugin import error. The installed metadata is in the venv.
	@rm -rf plugins/sm_explain_ops.egg-info

# Airflow's constraints pin everything requirements.txt resolves to; a URL works too (Airflow's own file).
AIRFLOW_CONSTRAINTS ?= constraints/airflow-3.3.2-python-3.11.txt

# uv when present, pip otherwise; each venv is rebuilt only when its requirements change.
# $(1): the venv, $(2): what `pip install` gets.
define make_venv
	@if [ -n "$(UV)" ]; then \
	  [ -x $(1)/bin/python ] || $(UV) venv -q -p $(PYTHON) $(1); \
	  VIRTUAL_ENV=$(1) $(UV) pip install -q $(2); \
	else \
	  [ -x $(1)/bin/python ] || $(PYTHON) -m venv $(1); \
	  $(1)/bin/python -m pip install -q --upgrade pip; \
	  $(1)/bin/python -m pip install -q $(2); \
	fi
endef

# The Airflow environment: requirements.txt with Airflow's constraints, the dev/test tools under the same
# constraints (so they never move a dependency Airflow was tested with), and the provider (sm-explain-ops)
# and the contracts both sides share, editable.
$(VENV)/.installed: requirements.txt requirements-dev.txt $(wildcard $(AIRFLOW_CONSTRAINTS)) pyproject.toml contracts/pyproject.toml
	$(call make_venv,$(VENV),-c $(AIRFLOW_CONSTRAINTS) -r requirements.txt -r requirements-dev.txt -e ./contracts -e .)
	@touch $@

# The runtime environment: the runtime distribution (include/), the local endpoint (local_endpoint/, dev and
# test only) and the contracts, editable. xgboost-cpu replaces xgboost (both install the module `xgboost`): a
# venv made before the switch drops it and the NCCL wheel only the full xgboost needs.
$(RUNTIME_VENV)/.installed: include/runtime-requirements.txt requirements-runtime-dev.txt include/pyproject.toml local_endpoint/pyproject.toml contracts/pyproject.toml
	@if [ -x $(RUNTIME_PY) ] && $(RUNTIME_PY) -m pip --version >/dev/null 2>&1; then \
	  $(RUNTIME_PY) -m pip uninstall -q -y xgboost nvidia-nccl-cu12 >/dev/null 2>&1 || true; \
	elif [ -x $(RUNTIME_PY) ] && [ -n "$(UV)" ]; then \
	  VIRTUAL_ENV=$(RUNTIME_VENV) $(UV) pip uninstall -q xgboost nvidia-nccl-cu12 >/dev/null 2>&1 || true; \
	fi
	$(call make_venv,$(RUNTIME_VENV),-r include/runtime-requirements.txt -r requirements-runtime-dev.txt -e ./contracts -e ./include -e ./local_endpoint)
	@touch $@

# The default image's environment, built ahead of the first job ("pulled"); other versions on first use.
$(IMAGE_CACHE)/.default-pulled: $(RUNTIME_VENV)/.installed contracts/src/sm_explain_contracts/images.py
	$(RUNTIME_PY) -m sm_local.image_envs pull $(DEFAULT_IMAGE)
	@touch $@

# Re-resolve the Airflow constraints from requirements.txt (after changing a pin there).
constraints: $(VENV)/.installed
	@{ sed -n '/^#/p' $(AIRFLOW_CONSTRAINTS); \
	  $(UV) pip compile -q requirements.txt --python $(AIRFLOW_PY) --no-header --no-annotate -o -; } > build/constraints.txt
	mv build/constraints.txt $(AIRFLOW_CONSTRAINTS)

# Size of each environment and what in it a deployment does not need (docs/environments.md has the figures).
env-sizes: setup
	$(AIRFLOW_PY) scripts/env_sizes.py $(VENV)=requirements.txt $(RUNTIME_VENV)=include/runtime-requirements.txt

lint: setup
	$(VENV)/bin/ruff check .

# Runtime-side tests (local endpoint internals, staging, explanations) run in the runtime env;
# Airflow-side tests (operators, sensors, DAG, end to end) in the Airflow env.
test: setup
	$(VENV)/bin/ruff check .
	$(RUNTIME_PY) -m pytest -q tests/contracts
	$(AIRFLOW_PY) -m pytest -q tests/contracts
	python3 scripts/parallel_suites.py \
	  "runtime=$(RUNTIME_PY) -m pytest --durations=10 tests/runtime tests/local_endpoint" \
	  "airflow=$(AIRFLOW_PY) -m pytest --durations=10 tests/airflow tests/distributions"

# The unit tests only: no local stack, no real processes, no full-data training (under two minutes).
FAST := -q -m "not stack and not slow and not process"
test-fast: setup
	$(VENV)/bin/ruff check .
	$(RUNTIME_PY) -m pytest $(FAST) tests/contracts tests/runtime tests/local_endpoint
	$(AIRFLOW_PY) -m pytest $(FAST) tests/contracts tests/airflow/unit

test-runtime: setup
	$(RUNTIME_PY) -m pytest --durations=10 tests/runtime tests/local_endpoint

test-airflow: setup
	$(AIRFLOW_PY) -m pytest --durations=10 tests/airflow

local-up: setup
	$(AIRFLOW_PY) scripts/local_stack.py up

local-down:
	@if [ -x $(AIRFLOW_PY) ]; then $(AIRFLOW_PY) scripts/local_stack.py down; else $(PYTHON) scripts/local_stack.py down; fi

clean:
	rm -rf .local demo-output .pytest_cache

# The built-in XGBoost image environments, like `docker image prune`: rebuilt on next use.
clean-images:
	rm -rf $(IMAGE_CACHE)

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

# Every bad input and fault the tests try, as the table docs/reliability.md (rows recorded by the tests).
RELIABILITY_LOG := $(abspath build/reliability.jsonl)
reliability: setup
	@mkdir -p build && rm -f $(RELIABILITY_LOG)
	SM_EXPLAIN_RELIABILITY_LOG=$(RELIABILITY_LOG) $(RUNTIME_PY) -m pytest -q -m reliability tests/runtime tests/local_endpoint
	SM_EXPLAIN_RELIABILITY_LOG=$(RELIABILITY_LOG) $(AIRFLOW_PY) -m pytest -q -m reliability tests/airflow
	$(AIRFLOW_PY) scripts/reliability_report.py $(RELIABILITY_LOG) > docs/reliability.md

bench: setup
	$(RUNTIME_PY) bench/bench_endpoint.py
