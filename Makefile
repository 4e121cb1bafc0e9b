# The two commands a newcomer runs: `make demo` and `make test`.
# Both start from nothing: they create .venv and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: install demo test lint typecheck pytest postgres browser wrk bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/gdpr-gateway demo

# PostgreSQL is part of the test run, not optional: start it when it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  (command -v pg_ctlcluster >/dev/null && \
	   pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start && \
	   sleep 2) || true

# The review page's browser test drives Debian's headless Chromium: install it when missing.
browser:
	@test -x /usr/bin/chromium || \
	  (apt-get update -qq && apt-get install -y -qq chromium)

# wrk drives the end-to-end bench and its smoke test: install Debian's when missing.
wrk:
	@command -v wrk >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq wrk)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install postgres browser wrk
	$(BIN)/pytest

test: lint typecheck pytest

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The end-to-end bench (results, plot and the table of docs/performance.md), then the
# audit log's and the policy engine's own benches. See docs/performance.md.
bench: $(BENCH_STAMP) postgres wrk
	$(BIN)/python -m bench.gateway_bench --update-docs
	$(BIN)/python -m bench.audit_bench
	$(BIN)/python -m bench.policies_bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
