# Two entry points for a fresh machine: `make run` (main job) and `make test`.
# Everything is installed from the lock file by uv; uv itself comes from PyPI if missing.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# Compile bytecode at install: the environment may forbid writing it at run time.
export UV_COMPILE_BYTECODE := 1
UV := python3 -m uv
PYTHON ?= python3

.PHONY: bootstrap run bento browser test test-fast lint bench

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==0.13.8"
	@$(UV) sync --frozen --quiet

run: bootstrap
	$(UV) run --frozen shiprisk run

# Package the MLflow champion and the service as a bento (after `make run`); prints the tag and
# the `bentoml serve` / `bentoml containerize` commands for it.
bento: bootstrap
	$(UV) run --frozen python -m shiprisk.serving.bento

# The docs-page test renders Swagger UI in a real headless browser: Debian's chromium,
# installed here when missing (apt-get; sudo when not root).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null; }

test: bootstrap browser
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
