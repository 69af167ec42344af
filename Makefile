# One entry point for setting up and running things. `make train` and `make test` work on a
# fresh machine with only python3 (>= 3.11) and make: they create .venv and install into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train demo check test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt plugins/zoo/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,bench]"
	# The robot zoo (example-robot-data's arms), a separate plugin distribution.
	$(PY) -m pip install --quiet -c constraints.txt --no-deps -e plugins/zoo
	touch $(STAMP)

# The main job: train the flagship spec with its default budget, then evaluate it.
train: setup
	$(VENV)/bin/ikrl train dobot_cr5+weighted_pose+sincos

demo: setup
	$(VENV)/bin/ikrl demo

# Lint, types, the layer contracts, then the tests (what CI runs, through .ci/run).
check: setup
	$(VENV)/bin/ruff check ikrl plugins tests benchmarks
	$(VENV)/bin/pyright
	$(VENV)/bin/lint-imports

test: check
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) benchmarks/kinematics.py
	$(PY) benchmarks/solve.py --quick

clean:
	rm -rf $(VENV) build *.egg-info
