# numrep: every set-up step lives here, so a fresh machine needs only Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA_DIR ?= $(CURDIR)/var/demo
LISTEN ?= 127.0.0.1:50051
STORE  ?= sqlite

.PHONY: help venv proto run test test-fast bench sim cassandra cassandra-stop cassandra-cluster clean test-faults

help:
	@echo "make run      - set up and run the exchange with a demo federation (embedded store)"
	@echo "make test     - set up and run every test, starting the services they need"
	@echo "make proto    - regenerate the protobuf/gRPC code from protos/"
	@echo "make bench    - run the benchmarks"
	@echo "make sim      - run the federation simulator (trust engine vs majority vote vs mean)"
	@echo "make test-faults - fault scenarios on dedicated Cassandra nodes (node kill, outage, disk full)"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

proto: $(STAMP)
	$(PY) -m numrep.protogen

CASSANDRA_DEMO_URL ?= cassandra://127.0.0.1:9042/numrep_demo?lag=0

run: $(STAMP)
ifeq ($(STORE),cassandra)
	bash infra/cassandra/cassandra.sh start
	$(VENV)/bin/numrep demo --data-dir $(DATA_DIR) --listen $(LISTEN) --store '$(CASSANDRA_DEMO_URL)' --fresh
else
	$(VENV)/bin/numrep demo --data-dir $(DATA_DIR) --listen $(LISTEN) --store $(STORE) --fresh
endif

test: $(STAMP)
	bash infra/test.sh

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not cassandra"

test-faults: $(STAMP)
	bash infra/faults.sh

bench: $(STAMP)
	$(PY) -m benchmarks

sim: $(STAMP)
	$(PY) -m sim

cassandra:
	bash infra/cassandra/cassandra.sh start

cassandra-cluster:
	bash infra/cassandra/cassandra.sh start --nodes 3

cassandra-stop:
	bash infra/cassandra/cassandra.sh stop

clean:
	rm -rf $(VENV) var build *.egg-info
