# The two commands a newcomer runs: `make demo` and `make test`.
# Both start from nothing: they create .venv and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck pytest postgres browser bench clean

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

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install postgres browser
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
