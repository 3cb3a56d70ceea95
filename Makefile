# Two entry points: `make report` (the zoo analysis and its report) and `make test`.
PY ?= python3
VENV := .venv
NF := $(VENV)/bin/netfrontier
HW ?= img-series4-1core
OUT ?= zoo-report

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

.PHONY: setup report test bench
setup: $(VENV)/.installed

report: setup
	$(NF) zoo --hw $(HW) --out $(OUT)

test: setup
	$(VENV)/bin/python -m pytest -q -n 2

bench: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python benchmarks/zoo_speed.py
	$(VENV)/bin/python benchmarks/capture_vs_counters.py
