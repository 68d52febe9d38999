# The two set-up commands of the README: `make serve` and `make test`.
# Both create .venv in the repo root and install what they need themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SIM_SEEDS ?= 500

.PHONY: serve test lint typecheck unit sim debs proto clean

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	@touch $@ $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/kvstore --name default --data-dir default.etcd \
	  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

# Debian packages the tests use as an oracle: the real etcd 3.4 server and etcdctl; and
# Go with etcd's packaged Go sources, for kvbench's watch receiver (bench/load/gowatch).
# Installing etcd-server may start Debian's own etcd service where systemd runs:
# we stop it, since the tests start their own etcd binaries on free ports.
DEBS := etcd-server etcd-client golang-go golang-etcd-server-dev
debs:
	@if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null || ! command -v go >/dev/null \
	    || [ ! -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ]; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null; \
	  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then \
	    $(SUDO) systemctl disable --now etcd >/dev/null 2>&1 || true; fi; \
	fi
	@etcd --version | head -1; etcdctl version | head -1; go version

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy --strict raft wal snapshot kvstore

# raft/ coverage comes from its own unit and scenario tests (tracing the simulator too
# would triple its run time); everything else runs on both cores without coverage.
unit: export HYPOTHESIS_PROFILE = ci
unit: $(TEST_STAMP) debs
	$(PY) -m pytest -q --cov=raft --cov-branch --cov-report=term-missing:skip-covered \
	  --cov-fail-under=95 tests/unit/raft
	$(PY) -m pytest -n 2 --dist loadfile --timeout 900 --ignore=tests/unit/raft tests

sim: $(TEST_STAMP)
	$(PY) -m bench.cli sim --seeds $(SIM_SEEDS) --nodes 3 --jobs 2
	$(PY) -m bench.cli sim --seeds $$(( $(SIM_SEEDS) / 5 )) --nodes 5 --jobs 2

test: lint typecheck unit sim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
