# Two commands on a fresh clone: `make train` (train, evaluate, export) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline on a machine with ../shared beside the clone; TFDS downloads elsewhere.
MANUAL_DIR ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data/mnist),)
export KERAS_VAE_MANUAL_DIR ?= $(MANUAL_DIR)

.PHONY: install test train lint

$(BIN)/keras-vae: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,onnx,serving]"
	touch $@

install: $(BIN)/keras-vae

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
