# Datrix developer commands. Every target installs what it needs (idempotent).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install demo test test-unit test-integration lint typecheck check bench clean

help:
	@echo "make demo       install, then run the demo on the embedded default (./.datrix)"
	@echo "make test       install everything, then lint, type-check and run the whole suite"
	@echo "make test-unit  the fast unit tests only (pytest -m 'not integration')"
	@echo "make bench      benchmarks (figures go to docs/benchmarks.md);"
	@echo "                SCAN_ARGS='--quick' / '--skip-peers' / '--big-csv 3' go to bench_scan.py"

install:
	@./scripts/bootstrap

demo: install
	$(BIN)/datrix demo

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy -p datrix

check: lint typecheck

# The unit tier on two processes (tests/conftest.py), then the integration tier serially
# (shared services); its 25 slowest tests are listed, to see where CI's time goes.
test: install lint typecheck
	$(BIN)/pytest -m "not integration" -q
	$(BIN)/pytest -m integration -q --durations=25

test-unit: install
	$(BIN)/pytest -m "not integration" -q

test-integration: install
	$(BIN)/pytest -m integration -q

SCAN_ARGS ?=

bench: install
	$(BIN)/python tests/benchmarks/bench_scan.py $(SCAN_ARGS)
	$(BIN)/python tests/benchmarks/bench_streams.py
	$(BIN)/python tests/benchmarks/bench_upload.py
	$(BIN)/python tests/benchmarks/bench_api.py
	$(BIN)/python tests/benchmarks/bench_fix.py
	$(BIN)/python tests/benchmarks/bench_pii.py

clean:
	rm -rf .datrix .pytest_cache .mypy_cache .ruff_cache
