# fsmc: the two commands a newcomer runs are `make demo` and `make test`; both set up
# everything they need (a .venv with the package and its extras, graphviz).

VENV    := .venv
PY      := $(VENV)/bin/python
FSMC    := $(VENV)/bin/fsmc
STAMP   := $(VENV)/.installed-stamp
PROTOCOLS := $(sort $(wildcard protocols/*/*.fsm))
# Protocol folders in the pEp engine's tree layout (codegen/*.fsm beside asn.1/pEp.asn1):
# each compiles into a package of its own, generated/<folder>/ (its files are named as
# the engine names them, keysync.asn1 among them).
TREES   := $(sort $(dir $(wildcard protocols/*/codegen/*.fsm)))
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup graphviz redis demo test generate diagrams bench mutate check clean

setup: $(STAMP) graphviz redis

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# graphviz renders the diagrams; install it from the distribution when `dot` is missing.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing graphviz (dot) with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; }

# redis-server carries `fsmc run` and its tests (each starts a server of its own on a free
# loopback port); install it from the distribution when it is missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

demo: setup
	@cd $(CURDIR) && $(PY) -m fsmc.demo

test: setup
	$(PY) -m pytest

generate: setup
	$(FSMC) compile --quiet $(PROTOCOLS)
	$(FSMC) diagram --quiet $(PROTOCOLS)
	@for tree in $(TREES); do name=$$(basename $$(dirname $$tree)); \
	  echo "$(FSMC) compile/diagram --quiet -o generated|diagrams/$$name $$tree*.fsm"; \
	  $(FSMC) compile --quiet -o generated/$$name $$tree*.fsm 2>/dev/null && \
	  $(FSMC) diagram --quiet -o diagrams/$$name $$tree*.fsm 2>/dev/null || \
	  { $(FSMC) check $$tree*.fsm; exit 1; }; done

diagrams: setup
	$(FSMC) diagram $(PROTOCOLS)

bench: setup
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) bench/bench_compiler.py
	$(PY) bench/bench_dispatch.py
	$(PY) bench/bench_explore.py
	$(PY) bench/bench_gka.py
	$(PY) bench/bench_handshakes.py
	$(PY) bench/bench_ratchets.py
	$(PY) bench/bench_transports.py
	$(PY) bench/bench_mutate.py

# The mutation scores of every protocol's FSM (fsmc mutate over its main scenarios).
mutate: setup
	$(PY) bench/bench_mutate.py

# generated/ first, from the DSL files as they are: mypy checks each protocol's device
# against the `...Bindings` interface its fsm generates, so an action renamed in a DSL
# file fails here.
check: generate
	$(VENV)/bin/ruff check fsmc runtime generated protocols tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
