# The two ways in: `make demo` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/dev.lock | sha1sum | cut -c1-12)

MODELS := .models
TABLE := $(MODELS)/static-e5/manifest.json
CLASSIFIER := $(MODELS)/classifier.joblib

.PHONY: lock venv model stack-up stack-down stack-status tools test test-unit demo chaos bench clean contract

## The exact versions of requirements/dev.lock (hash-checked), then this project itself.
$(STAMP): pyproject.toml requirements/dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q --require-hashes -r requirements/dev.lock
	@$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

## After editing pyproject.toml's dependencies: pin them again (uv, from PyPI), every platform, with hashes.
lock: $(STAMP)
	@$(PY) -m pip install -q "uv>=0.5,<1"
	@$(VENV)/bin/uv pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 --quiet \
	  --custom-compile-command "make lock" -o requirements/runtime.lock
	@$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra bench --generate-hashes --universal \
	  --python-version 3.11 --quiet --custom-compile-command "make lock" -o requirements/dev.lock

venv: $(STAMP)

## The learned classifier: the embedding table distilled once from the packaged e5 model (some
## minutes), then the classifier trained on config/ (seconds) whenever its inputs change.
$(TABLE): | $(STAMP)
	@$(VENV)/bin/helpdesk classifier distill

$(CLASSIFIER): $(TABLE) config/classification.yaml config/classification_examples.yaml
	@$(VENV)/bin/helpdesk classifier train

model: venv $(CLASSIFIER)

## Real Kafka (KRaft) on 127.0.0.1:$KAFKA_PORT (9092) and PostgreSQL on 127.0.0.1:$PG_PORT (55432, unless
## DATABASE_URL is set), state in $HELPDESK_STACK_DIR (.stack/). stack-up reuses servers that answer and
## says whose they are; stack-down stops only what this checkout's state dir started; stack-status
## prints per server: up or down, address, version, owner (README, "The local stack").
stack-up: venv
	@bash deploy/local/stack.sh up

stack-down:
	@bash deploy/local/stack.sh down

stack-status: venv
	@bash deploy/local/stack.sh status

## promtool (Debian's prometheus package) for the alert-rule checks.
tools:
	@bash deploy/local/tools.sh

## docs/contract.md tables, docs/schemas/ and docs/asyncapi/, regenerated from the pydantic models.
contract: venv
	@$(PY) deploy/contract_docs.py && $(PY) deploy/asyncapi.py

## The whole suite: unit tests, then integration tests on the real servers.
test: venv model tools stack-up
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: venv model
	@$(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS)

## All services, sample complaints, and what happened to each case.
demo: venv model tools stack-up
	@$(PY) deploy/demo/demo.py

## The proof suite at full size: longer chaos under higher load, 10,000 hostile records.
chaos: venv model tools stack-up
	@CHAOS_SECONDS=$${CHAOS_SECONDS:-120} CHAOS_RATE=$${CHAOS_RATE:-12} FUZZ_RECORDS=$${FUZZ_RECORDS:-10000} \
	  $(VENV)/bin/pytest tests/proof -s $(PYTEST_ARGS)

## Benchmarks, each figure a ratio against a baseline measured in the same run (docs/benchmarks.md).
bench: venv model stack-up
	@$(PY) -m tests.benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache $(MODELS)
