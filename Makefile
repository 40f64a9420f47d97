# `make demo` runs the main job on the embedded default; `make test` runs every check.
# Both create .venv and install into it first (torch from the local CPU wheel, before anything
# that depends on it).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pip prints a warning per package for the machine-wide extra index folders that do not exist.
PIP_QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint bench services clean reproduce-sasrec

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(PIP_QUIET)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(PIP_QUIET)
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/musicrec demo

services:
	scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) services lint
	$(BIN)/pytest

bench: $(STAMP) services
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.features

# The SASRec paper check on the authors' Amazon Games data with the paper's configuration
# (about an hour on 2 cores; not part of CI). Writes results/sasrec_Video.json.
SHARED_DATA ?= ../shared/data
reproduce-sasrec: $(STAMP)
	$(BIN)/python -m ml_pipeline.train_transformer --data $(SHARED_DATA)/sasrec_games/Video.txt \
		--epochs 200 --batch-size 128 --max-seq-len 50 --embedding-dim 50 --num-layers 2 \
		--num-heads 1 --dropout 0.5 --lr 0.001 --seed 42 --eval-every 20 \
		--output var/models/sasrec_games.pt --results results/sasrec_Video.json

clean:
	rm -rf $(VENV) var runs mlruns .pytest_cache .mypy_cache .ruff_cache
