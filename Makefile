# Two commands on a fresh clone: `make train` (train, evaluate, figures, export) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= aevb-mnist
RUN_DIR ?= runs/$(PRESET)
MODEL_DIR ?= saved_models/$(PRESET)
# log p(x) by importance sampling with k=5000 on the first EVAL_EXAMPLES test images.
EVAL_EXAMPLES ?= 1000
# Offline on a machine with ../shared beside the clone; TFDS downloads elsewhere.
SHARED_DATA := $(abspath ../shared/data)
export KERAS_VAE_MANUAL_DIR ?= $(if $(wildcard $(SHARED_DATA)/mnist),$(SHARED_DATA),)
export TF_CPP_MIN_LOG_LEVEL ?= 2

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

train: $(RUN_DIR)/evaluation.json $(RUN_DIR)/samples.png $(RUN_DIR)/reconstructions.png \
       $(RUN_DIR)/$(PRESET).tflite

# Re-running after an interruption resumes from the last epoch's backup.
$(RUN_DIR)/metrics.json: | install
	$(BIN)/keras-vae train --preset $(PRESET) --run-dir $(RUN_DIR)

$(RUN_DIR)/evaluation.json: | $(RUN_DIR)/metrics.json
	$(BIN)/keras-vae evaluate --run-dir $(RUN_DIR) --num-samples 5000 \
	    --max-examples $(EVAL_EXAMPLES) --output $@

$(RUN_DIR)/samples.png: | $(RUN_DIR)/metrics.json
	$(BIN)/keras-vae sample --run-dir $(RUN_DIR) --output $@

$(RUN_DIR)/reconstructions.png: | $(RUN_DIR)/metrics.json
	$(BIN)/keras-vae plot --run-dir $(RUN_DIR) --kind reconstructions --output $@

# Each export is the next version of $(MODEL_DIR), which TF Serving watches.
$(RUN_DIR)/export.txt: | $(RUN_DIR)/metrics.json
	$(BIN)/keras-vae export --run-dir $(RUN_DIR) --model-dir $(MODEL_DIR) > $@.partial \
	    && mv $@.partial $@ && cat $@

$(RUN_DIR)/$(PRESET).tflite: $(RUN_DIR)/export.txt
	$(BIN)/keras-vae convert --saved-model $(MODEL_DIR) --output $@
