# Developer entry points. `make run` and `make test` are the two commands of the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv trusts the system certificate store (see scripts/bootstrap)
export UV_SYSTEM_CERTS ?= 1
UV := $(shell command -v uv 2>/dev/null || echo $${XDG_CACHE_HOME:-$$HOME/.cache}/convoai-worker/tools/bin/uv)

.PHONY: help setup lint test test-only simulate simulate-quick chaos chaos-quick kafka-up kafka-down run bench bench-quick bench-emulator bench-rebalance schemas policy-doc mutants check-deploy clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup:  ## create .venv from uv.lock (installs uv when missing)
	@bash scripts/bootstrap >/dev/null

lint: setup  ## ruff, formatting, mypy --strict and the import-graph contracts
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy
	$(UV) run --locked lint-imports

test: setup  ## lint, deployment checks, all tests (they start their own broker); CI then runs chaos-quick
	$(MAKE) lint
	bash scripts/check-deploy
	$(UV) run --locked pytest

test-only: setup  ## the test suite alone (args: PYTEST_ARGS=...; CONVOAI_TEST_BOOTSTRAP=host:port reuses a broker)
	$(UV) run --locked pytest $(PYTEST_ARGS)

simulate: setup  ## the group under seeded overlapping faults on virtual time, 10 min (SEED=n: one schedule)
	$(UV) run --locked python -m simulation $(if $(SEED),--seed $(SEED),--budget $(or $(SIMULATE_BUDGET),600))

simulate-quick: setup  ## the same for 90 s (CI runs it)
	$(UV) run --locked python -m simulation --quick

chaos: setup  ## seven failure scenarios on a broker of its own (about 10 min); chaos/results/latest.json
	$(UV) run --locked python -m chaos

chaos-quick: setup  ## the chaos scenarios in short form (a few minutes; CI runs it)
	$(UV) run --locked python -m chaos --quick

run: setup  ## the demo: local broker + emulator + worker, a scripted scenario, every event shown
	bash scripts/with-kafka $(UV) run --locked python scripts/demo.py

kafka-up:  ## start the local broker on 127.0.0.1:9092 (fetches the jars once)
	bash scripts/kafka up

kafka-down:  ## stop the local broker
	bash scripts/kafka down

bench: setup  ## the worker side by side with FastStream, aiokafka loops and bare aiohttp (~6 min)
	bash scripts/with-kafka $(UV) run --locked --group bench python -m bench.compare

bench-quick: setup  ## the same comparison and profile, smaller (under 3 min)
	bash scripts/with-kafka $(UV) run --locked --group bench python -m bench.compare --quick

bench-emulator: setup  ## emulator requests/s on one core, load from wrk on the other (apt-get install -y wrk)
	$(UV) run --locked python bench/bench_emulator.py

bench-rebalance: setup  ## what scaling and rolling restarts cost per assignor and membership, on its own broker (about 5 min; ARGS="--restarts 3": every pod)
	$(UV) run --locked python -m bench.bench_rebalance $(ARGS)

schemas: setup  ## regenerate contracts/schema/ from the msgspec types
	$(UV) run --locked python scripts/generate-schemas

policy-doc: setup  ## regenerate docs/policy.md from the outcome policy table (worker/api/policy.py)
	$(UV) run --locked python scripts/generate-policy-doc

mutants: setup  ## mutation testing: share of mutants killed per module, survivors (docs/testing.md)
	$(UV) run --locked python scripts/mutants $(MUTANTS_ARGS)

check-deploy: setup  ## hadolint, helm lint/template and offline manifest validation
	bash scripts/check-deploy

clean:  ## remove local broker data and caches of this checkout
	bash scripts/kafka down
	rm -rf .kafka .mypy_cache .ruff_cache .pytest_cache mutants
