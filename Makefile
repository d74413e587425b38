# The README's two commands: `make repro` (the main job, offline quick profile) and `make test`.
# Both create .venv and install the project on first use; nothing else needs to be set up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Telemetry off for every tool the project drives (DVC, Prefect, Ray).
export DVC_NO_ANALYTICS := 1
export ITERATIVE_DO_NOT_TRACK := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup repro demo test test-all clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# One local Prefect server for the whole run (each stage would otherwise start its own, ~7 s
# each); the venv's bin first on PATH so that dvc's `python -m stages...` runs in the venv.
repro: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pipeline.flows.server run -- dvc repro

demo: setup
	$(PY) -m stages.demo

test: setup
	$(PY) -m pytest -m "not slow" -q

test-all: setup
	$(PY) -m pytest -q

clean:
	rm -rf .prefect_results .pytest_cache
