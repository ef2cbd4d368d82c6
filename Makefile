# Every target creates .venv itself, so a fresh clone needs nothing but python3 (>= 3.10) and make.
# `make demo` installs only what the demo needs (the provider, Airflow, the SQLite provider);
# `make test` also installs, through tools/provision, the database servers and headers its tests need
# and the Azure Blob emulator (Azurite, from npm); the S3 and GCS emulators come with the test extra.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
DEMO_STAMP := $(VENV)/.installed-demo
STAMP      := $(VENV)/.installed-test
# The compatibility cells: Airflow line x Python, each with constraints/airflow-<ver>-py<py>.txt.
COMPAT_CELLS ?= 2.11.2:3.10 3.0.6:3.12 3.2.2:3.13
DOCS_SRC   ?= docs
DOCS_BUILD ?= docs/_build

.PHONY: test test-fast test-compat test-bigquery lint docs demo bench bench-load services clean

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade --default-pip >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5'

$(DEMO_STAMP): pyproject.toml | $(UV)
	$(UV) pip install --quiet -p $(BIN)/python -e '.[sqlite]'
	touch $@

$(STAMP): pyproject.toml | $(UV) services
	$(UV) pip install --quiet -p $(BIN)/python -e '.[test,bench,docs,emulators]'
	touch $@

# PostgreSQL and MariaDB servers, and mysqlclient's build headers: installed when missing (as root).
services:
	tools/provision $(PYTHON)

# ruff (lint and format), mypy strict, and the import-linter contracts of pyproject.toml (the layering).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite: lint, test-fast (the fast tests spread over the cores), the docs, then the slow
# ones (fault, system, S3, memory and packaging tests) two at a time (most are one busy Airflow
# process each), then the timing tests (pacing, event-loop stalls) alone, so nothing competes with them.
# -rs lists every skip with its reason, so a test skipped for a missing service shows in the log.
test: lint test-fast docs
	$(BIN)/pytest -q -rs -m "slow and not timing" -n 2 --dist worksteal --durations=25
	$(BIN)/pytest -q -rs -m timing --durations=10

# The inner loop: pytest only (no lint), everything but the slow tests, on every core.
test-fast: $(STAMP)
	$(BIN)/pytest -q -rs -m "not slow" -n auto

# The BigQuery emulator's tests alone, required to run: local-bigquery needs Python >= 3.13 (a pyenv
# 3.13, python3.13 on PATH or SLACK_AUDIT_PYTHON313), which `make test` skips without; here it fails.
test-bigquery: $(STAMP)
	SLACK_AUDIT_REQUIRE_BIGQUERY=1 $(BIN)/pytest -q -rs -m bigquery -n 2

# The cells run at the same time (COMPAT_JOBS=1 runs them one by one); see .ci/compat-all.
test-compat: services
	.ci/compat-all $(COMPAT_CELLS)

demo: $(DEMO_STAMP)
	$(BIN)/python tools/demo.py

# The docs site (Sphinx), strict: any warning, broken link or missing reference fails the build.
docs: $(STAMP)
	$(BIN)/sphinx-build -q -W --keep-going -n -b html $(DOCS_SRC) $(DOCS_BUILD)/html

# Every scenario; BENCH_ARGS="--scenario backfill" for one, "--quick" for a short run. The backfill
# scenario runs a real Airflow on a throwaway PostgreSQL: the Debian binaries (`make services`).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py $(BENCH_ARGS)

# The 100k-event PostgreSQL load (needs the Debian postgresql binaries); BENCH_LOAD_ARGS="--rounds 5".
bench-load: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py $(BENCH_LOAD_ARGS)

clean:
	rm -rf $(VENV) $(DOCS_BUILD) .compat .ci-tools .demo .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
