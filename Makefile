# Two entry points: `make report` (the zoo analysis and its report) and `make test`;
# `make serve` opens the interactive pages on http://127.0.0.1:$(PORT)/.
PY ?= python3
VENV := .venv
NF := $(VENV)/bin/netfrontier
HW ?= img-series4-1core
OUT ?= zoo-report
PORT ?= 8765

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

.PHONY: setup report test bench serve system-deps
setup: $(VENV)/.installed

# Debian packages the tests need, each only when missing: headless Chromium and its driver
# (browser tests), PostgreSQL (the search's multi-worker test starts its own server) and
# Fashion-MNIST (the search's from-scratch track and the lottery tickets).
system-deps:
	@pkgs=""; \
	if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  pkgs="$$pkgs chromium chromium-driver"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then pkgs="$$pkgs postgresql"; fi; \
	if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then \
	  pkgs="$$pkgs dataset-fashion-mnist"; fi; \
	if [ -n "$$pkgs" ]; then \
	  echo "installing$$pkgs for the tests"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q --no-install-recommends $$pkgs || \
	  { $$sudo apt-get update -q && \
	    $$sudo apt-get install -y -q --no-install-recommends $$pkgs; }; \
	fi

report: setup
	$(NF) zoo --hw $(HW) --out $(OUT)

test: setup system-deps
	$(VENV)/bin/python -m pytest -q -n 2

# The zoo into the store (cached after the first run), then the pages; Ctrl-C stops.
serve: report
	$(NF) serve --port $(PORT)

bench: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python benchmarks/zoo_speed.py
	$(VENV)/bin/python benchmarks/capture_vs_counters.py
