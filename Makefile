# Two set-up commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run serve test bench fuzz lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.run-deps

$(VENV)/.bench-deps: requirements.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	@touch $@ $(VENV)/.dev-deps $(VENV)/.run-deps

## run: engine + dashboard + demo fleet (Ctrl-C stops everything)
run: $(VENV)/.run-deps
	$(BIN)/python -m engine up --demo

## serve: the engine alone, no dashboard, no demo fleet
serve: $(VENV)/.run-deps
	$(BIN)/python -m engine serve

## test: the whole suite (real PostgreSQL: DATABASE_URL's server, else an embedded one)
test: $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: the benchmarks under bench/, each printing its ratio against a named peer (installs Locust)
bench: $(VENV)/.bench-deps
	$(BIN)/python -m bench.pick_cost
	$(BIN)/python -m bench.breaker_overhead
	$(BIN)/python -m bench.router_overhead
	$(BIN)/python -m bench.loadgen_vs_locust
	$(BIN)/python -m bench.coordinated_omission
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.chart_query
	$(BIN)/python -m bench.uptime_query
	$(BIN)/python -m bench.db_outage
	$(BIN)/python -m bench.hostile_client --rounds 3
	$(BIN)/python -m bench.alert_rules
	$(BIN)/python -m bench.fleet_views
	$(BIN)/python -m bench.proxy_vs_nginx
	$(BIN)/python -m bench.health_scale

## fuzz: schemathesis over every operation of a running engine on a fresh database, 100 examples each, every check
fuzz: $(VENV)/.dev-deps
	$(BIN)/python -m bench.schemathesis_run $(FUZZ_ARGS)

## lint: ruff, mypy and the import contracts (layers, no cycles: [tool.importlinter] in pyproject.toml)
lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
