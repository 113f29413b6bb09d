# README's two commands: `make demo` runs the workflow on config.yaml's demo experiment, and
# `make test` runs the whole test suite. Each does its own set-up on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned: a looser requirement resolved in a clean environment pulls gigabytes
# of CUDA packages on a CPU machine.
TORCH ?= torch==2.13.0
CORES ?= all

.PHONY: setup demo test test-gpu lint format clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[workflow,dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint

test: lint
	$(BIN)/python -m pytest -m "not gpu" --durations=15 tests

# On a machine with CUDA (not in CI): the GPU tests, which fail rather than skip without one.
test-gpu: setup
	$(BIN)/python -m pytest -m gpu tests/gpu

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf results logs benchmarks data/demo .snakemake
