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

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
