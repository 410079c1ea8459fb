# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
RUNTIME_VENV := .venv-runtime
AIRFLOW_PY := $(VENV)/bin/python
RUNTIME_PY := $(RUNTIME_VENV)/bin/python
# The local endpoint's environments of the built-in XGBoost images (sm_local.image_envs), one per version.
IMAGE_CACHE := .venv-images
DEFAULT_IMAGE := 1.7-1
UV := $(shell command -v uv 2>/dev/null)
export SM_EXPLAIN_RUNTIME_PYTHON := $(abspath $(RUNTIME_PY))
export SM_EXPLAIN_AIRFLOW_PYTHON := $(abspath $(AIRFLOW_PY))

.PHONY: setup test test-runtime test-airflow lint local-up local-down demo airflow seed-versions bench clean clean-images reliability

setup: $(VENV)/.installed $(RUNTIME_VENV)/.installed $(IMAGE_CACHE)/.default-pulled

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
endef

# The contracts both sides share (standard library only), installed editable into both environments.
define install_contracts
	@if [ -n "$(UV)" ]; then \
	  VIRTUAL_ENV=$(1) $(UV) pip install -q -e contracts; \
	else \
	  $(1)/bin/python -m pip install -q -e contracts; \
	fi
endef

$(VENV)/.installed: requirements.txt contracts/pyproject.toml
	$(call make_venv,$(VENV),requirements.txt)
	$(call install_contracts,$(VENV))
	@touch $@

# xgboost-cpu replaces xgboost (both install the module `xgboost`): a venv made before the switch drops it.
$(RUNTIME_VENV)/.installed: include/runtime-requirements.txt contracts/pyproject.toml
	@if [ -x $(RUNTIME_PY) ] && $(RUNTIME_PY) -m pip --version >/dev/null 2>&1; then \
	  $(RUNTIME_PY) -m pip uninstall -q -y xgboost >/dev/null 2>&1 || true; \
	elif [ -x $(RUNTIME_PY) ] && [ -n "$(UV)" ]; then \
	  VIRTUAL_ENV=$(RUNTIME_VENV) $(UV) pip uninstall -q xgboost >/dev/null 2>&1 || true; \
	fi
	$(call make_venv,$(RUNTIME_VENV),include/runtime-requirements.txt)
	$(call install_contracts,$(RUNTIME_VENV))
	@touch $@

# The default image's environment, built ahead of the first job ("pulled"); other versions on first use.
$(IMAGE_CACHE)/.default-pulled: $(RUNTIME_VENV)/.installed contracts/src/sm_explain_contracts/images.py
	PYTHONPATH=include $(RUNTIME_PY) -m sm_local.image_envs pull $(DEFAULT_IMAGE)
	@touch $@

lint: setup
	$(VENV)/bin/ruff check .

# Runtime-side tests (local endpoint internals, staging, explanations) run in the runtime env;
# Airflow-side tests (operators, sensors, DAG, end to end) in the Airflow env.
test: setup
	$(VENV)/bin/ruff check .
	$(RUNTIME_PY) -m pytest -q tests/contracts
	$(AIRFLOW_PY) -m pytest -q tests/contracts
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
	SM_EXPLAIN_RELIABILITY_LOG=$(RELIABILITY_LOG) $(RUNTIME_PY) -m pytest -q -m reliability tests/runtime
	SM_EXPLAIN_RELIABILITY_LOG=$(RELIABILITY_LOG) $(AIRFLOW_PY) -m pytest -q -m reliability tests/airflow
	$(AIRFLOW_PY) scripts/reliability_report.py $(RELIABILITY_LOG) > docs/reliability.md

bench: setup
	$(RUNTIME_PY) bench/bench_endpoint.py
