# Two entry points for a fresh machine: `make run` (main job) and `make test`.
# Everything is installed from the lock file by uv; uv itself comes from PyPI if missing.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# Compile bytecode at install: the environment may forbid writing it at run time.
export UV_COMPILE_BYTECODE := 1
UV := python3 -m uv
PYTHON ?= python3

.PHONY: bootstrap run test test-fast lint bench

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==0.13.8"
	@$(UV) sync --frozen --quiet

run: bootstrap
	$(UV) run --frozen shiprisk run

test: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen pytest

# The inner loop: no servers, no MLflow store, no trained model.
test-fast: bootstrap
	$(UV) run --frozen pytest -q tests/test_architecture.py tests/data tests/features \
		tests/decisions tests/training

lint: bootstrap
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

bench: bootstrap
	$(UV) sync --frozen --group bench --quiet
	$(UV) run --frozen python benchmarks/run_all.py
