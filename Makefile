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

# The loop over Mosquitto with TLS, a password per pump and access rules (needs the mosquitto binary);
# four simulated hours instead of five keep it a few minutes shorter on CI.
demo-secure: $(STAMP)
	$(BIN)/pumpops demo --secure --workspace demo-secure-workspace --run-hours 4

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
