# streamlimit: `make run` serves on :3000 with the embedded store (runtime dependencies only);
# `make test` runs every test in parallel, `make test-quick` the fast tier (dev tools installed on first use).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
SOAK_S ?= 300
# `make run` serves these plans unless STREAMLIMIT_PLANS is set (the README's walkthrough uses them)
DEMO_PLANS ?= basic=1,standard=2,premium=4
# pytest workers for make test: the suite mostly waits on servers and sockets, so more workers
# than cores pays (measured in README "Development"); loadfile keeps a module's fixtures on one worker
TEST_WORKERS ?= 3

.PHONY: install run test test-quick lint typecheck unit soak bench clean

install: $(STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# the service alone: what `make run` needs
$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $(RUN_STAMP)

# plus the test, lint and type-check tools
$(STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

run: $(RUN_STAMP)
	STREAMLIMIT_PLANS="$${STREAMLIMIT_PLANS-$(DEMO_PLANS)}" $(BIN)/streamlimit serve

# the examples are scripts in folders of their own (examples/*/): checked by file
EXAMPLES := examples/licence-server/licence_server.py examples/edge-gate/edge_verifier.py

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy $(EXAMPLES)

unit: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# the fast tier: everything not marked slow (unit tests, the contract on memory://, the API on one backend)
test-quick: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

test: lint typecheck unit

# the long history-checked storm: `make soak SOAK_S=60` for a short run; ends with `violations: N`
soak: install
	$(BIN)/python -m tests.storm.soak --seconds $(SOAK_S)

# the benchmark suite (bench/): regenerates docs/benchmarks.md and docs/benchmarks.png; BENCH_RUNS,
# BENCH_SECONDS, ... (bench/config.py) shorten it. Needs wrk and redis-benchmark (Debian's wrk and
# redis-tools), installed here with apt-get when missing and running as root.
bench: $(BENCH_STAMP)
	@missing=""; command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make bench needs$$missing: apt-get install$$missing" >&2; exit 1; fi; \
	fi
	$(BIN)/python -m bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build src/*.egg-info
