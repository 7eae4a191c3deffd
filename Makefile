# Every target creates or reuses .venv by itself; nothing else needs installing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-secure test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[hub,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pumpops demo

# The loop over Mosquitto with TLS, a password per pump and access rules (needs the mosquitto binary).
# Half the demo's default pace: the retraining runs while the agents run on, and TLS plus a
# loaded 2-core machine left it too little of their time at the default pace (the loop did not
# close in 3 of 3 loaded runs; at --speed 60 it closed, 13 min 45 s wall under load).
demo-secure: $(STAMP)
	$(BIN)/pumpops demo --secure --speed 60 --workspace demo-secure-workspace

test: $(STAMP)
	$(BIN)/pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
