# govcloud: one command per job. Each target sets up what it needs (apt packages, .venv).
.PHONY: setup setup-e2e demo test test-fast lint format bench clean

VENV := .venv
BIN := $(VENV)/bin

setup:
	scripts/bootstrap.sh

setup-e2e:
	scripts/bootstrap.sh --e2e

demo: setup
	$(BIN)/govcloud demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole suite: static checks, then every test tier (PostgreSQL and e2e included).
test: setup-e2e lint
	$(BIN)/pytest

# Unit and component tests only: the quick inner loop.
test-fast: setup
	$(BIN)/pytest tests/unit tests/component -q

# Benchmarks (~25 min; BENCH_ARGS=--quick for ~3 min). The OpenStack Placement reference is
# built in its own virtualenv under .bench/ first; without it, Placement is reported as skipped.
BENCH_ARGS ?=
bench: setup
	scripts/placement-ref.sh || echo "OpenStack Placement reference not built: it will be skipped"
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
