# Datrix developer commands. Every target installs what it needs (idempotent).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install demo test test-unit test-integration lint typecheck check bench bench-spark-scale clean

help:
	@echo "make demo       install, then run the demo on the embedded default (./.datrix)"
	@echo "make test       install everything, then lint, type-check and run the whole suite"
	@echo "make test-unit  the fast unit tests only (pytest -m 'not integration')"
	@echo "make bench      benchmarks (figures go to docs/benchmarks.md);"
	@echo "                SCAN_ARGS='--quick' / '--skip-peers' / '--big-csv 3' go to bench_scan.py"
	@echo "make bench-spark-scale  spark on the local cluster (512m driver) vs polars, per process;"
	@echo "                SPARK_SCALE_ARGS='--rows 1000000 --rows 10000000' (default 1M)"

install:
	@./scripts/bootstrap

demo: install
	$(BIN)/datrix demo

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy -p datrix

check: lint typecheck

# The services the integration tier needs start in the background first (on a fresh
# machine: downloads, minutes), so they come up while lint, the type check and the unit
# tier run; the integration tier's `services` fixture runs the same `up`, which waits on
# its lock and then reuses them (the fixture reads SERVICES below). The unit
# tier on two processes (tests/conftest.py); then the integration tier on two
# processes, a test file per process at a time (the tests share the services, each
# isolated by its own topic prefix, schema and object prefix); then, alone, the few tests
# marked `serial` that stop and restart a shared service. The slowest tests are listed,
# to see where CI's time goes. The Spark cluster: two workers of 2 cores (on a 2-core
# machine: slots more than CPUs) and a core per application, so each of the two test
# processes' session and a CLI scan beside each get one (tests/integration/conftest.py
# reads SERVICES and SERVICES_ENV from here: the one list).
SERVICES := all s3 connect registry spark
SERVICES_ENV := DATRIX_SPARK_WORKER_CORES=2 DATRIX_SPARK_APP_CORES=1
SERVICES_LOG := build/services-up.log

test: install
	@mkdir -p build
	@echo "starting the services in the background (deploy/local/up $(SERVICES); log: $(SERVICES_LOG))"
	@setsid env $(SERVICES_ENV) deploy/local/up $(SERVICES) > $(SERVICES_LOG) 2>&1 < /dev/null &
	$(BIN)/ruff check .
	$(BIN)/mypy -p datrix
	$(BIN)/pytest -m "not integration" -q
	$(BIN)/pytest -m "integration and not serial" -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25
	$(BIN)/pytest -m "integration and serial" -q --durations=5

test-unit: install
	$(BIN)/pytest -m "not integration" -q

test-integration: install
	$(BIN)/pytest -m "integration and not serial" -q -n 2 --dist loadfile --no-loadscope-reorder
	$(BIN)/pytest -m "integration and serial" -q

SCAN_ARGS ?=

bench: install
	$(BIN)/python tests/benchmarks/bench_scan.py $(SCAN_ARGS)
	$(BIN)/python tests/benchmarks/bench_streams.py
	$(BIN)/python tests/benchmarks/bench_upload.py
	$(BIN)/python tests/benchmarks/bench_api.py
	$(BIN)/python tests/benchmarks/bench_fix.py
	$(BIN)/python tests/benchmarks/bench_pii.py
	$(BIN)/python tests/benchmarks/bench_spark_scale.py $(SPARK_SCALE_ARGS)

# deploy/local/up spark (reused when running), then the same file scanned on the cluster
# and with Polars: wall time and peak RSS per process, and the findings compared.
SPARK_SCALE_ARGS ?=

bench-spark-scale: install
	$(BIN)/python tests/benchmarks/bench_spark_scale.py $(SPARK_SCALE_ARGS)

clean:
	rm -rf .datrix .pytest_cache .mypy_cache .ruff_cache
