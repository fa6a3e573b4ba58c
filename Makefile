# Every target sets up what it needs: a .venv in the repo with the cloud, edge and dev extras.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export OMP_NUM_THREADS ?= 2

.PHONY: venv test test-fast lint typecheck proto demo mosquitto bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cloud,dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict cloud edge

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --strict cloud edge
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest tests/unit

proto: $(STAMP)
	PYTHON=$(PY) scripts/gen_proto.sh

# The whole system on this machine: broker, collector, two edge nodes, train, deploy, watch.
demo: $(STAMP) mosquitto
	$(VENV)/bin/linewatch demo

mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  { echo "installing mosquitto"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; }

bench: $(STAMP)
	$(PY) bench/detector.py
	$(PY) bench/edge_serving.py
	$(PY) bench/mqtt_pipeline.py
	$(PY) bench/rollout.py
	$(PY) bench/grpc_tls.py
	$(PY) bench/web_review.py
	$(PY) bench/web_live.py

clean:
	rm -rf $(VENV) var/
