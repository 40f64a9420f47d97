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

.PHONY: install compose-tool demo serve test lint bench services clean reproduce-sasrec reproduce-mpd \
	reproduce-cold-start reproduce-interest-graph bench-redis-sizing bench-training bench-serving bench-predict bench-feedback bench-chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(PIP_QUIET)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(PIP_QUIET)
	@# Optimized-mode bytecode for the servers (PYTHONOPTIMIZE=1; nothing writes it at run time
	@# here). torch/testing holds Python 3.12-only files, never imported.
	$(BIN)/python -O -m compileall -q -j 0 -x "/torch/testing/" $(VENV)/lib >/dev/null
	touch $@

install: $(STAMP)

# The Python docker-compose (1.29, the last one; `config` needs no Docker engine) for the offline
# check of docker-compose.yml in tests/infra. It pins PyYAML<6, whose sdist needs Cython<3 and
# no build isolation on Python 3.11: a venv of its own, apart from the project's.
COMPOSE_VENV := .venv-compose
COMPOSE_STAMP := $(COMPOSE_VENV)/.installed
$(COMPOSE_STAMP):
	test -x $(COMPOSE_VENV)/bin/python || $(PYTHON) -m venv $(COMPOSE_VENV)
	$(COMPOSE_VENV)/bin/pip install --quiet "cython<3" wheel setuptools $(PIP_QUIET)
	$(COMPOSE_VENV)/bin/pip install --quiet --no-build-isolation pyyaml==5.4.1 $(PIP_QUIET)
	$(COMPOSE_VENV)/bin/pip install --quiet docker-compose==1.29.2 $(PIP_QUIET)
	touch $@

compose-tool: $(COMPOSE_STAMP)

demo: $(STAMP)
	$(BIN)/musicrec demo

# The API on API_PORT (8000) over what `make demo` built; docs at /docs. Optimized: Feast's
# classes are not re-instrumented by typeguard at import (the install compiles that bytecode).
serve: $(STAMP)
	PYTHONOPTIMIZE=1 $(BIN)/musicrec serve

services:
	scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: $(STAMP) $(COMPOSE_STAMP) services lint
	$(BIN)/pytest

bench: $(STAMP) services
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.features
	$(BIN)/python -m benchmarks.inference

# The SASRec paper check on the authors' Amazon Games data with the paper's configuration
# (about an hour on 2 cores; not part of CI). Writes results/sasrec_Video.json.
SHARED_DATA ?= ../shared/data
reproduce-sasrec: $(STAMP)
	$(BIN)/python -m ml_pipeline.training.train_transformer --data $(SHARED_DATA)/sasrec_games/Video.txt \
		--epochs 200 --batch-size 128 --max-seq-len 50 --embedding-dim 50 --num-layers 2 \
		--num-heads 1 --dropout 0.5 --lr 0.001 --seed 42 --eval-every 20 \
		--output var/models/sasrec_games.pt --results results/sasrec_Video.json
	$(BIN)/python -m ml_pipeline.evaluation.report

# SASRec and the tuned baselines on the MPD playlists (leave-one-out), on the tracks heard at
# least MIN_ITEM_COUNT times (1: all), then the tables in docs/results.md. About 20 minutes on 2
# idle cores with the default 5, an hour with 1; not part of CI.
MIN_ITEM_COUNT ?= 5
MPD_SUFFIX := $(if $(filter 1,$(MIN_ITEM_COUNT)),,-min$(MIN_ITEM_COUNT))
MPD_DATA := --data $(SHARED_DATA)/mpd_reduced --min-item-count $(MIN_ITEM_COUNT)
MPD_TRAIN := $(BIN)/python -m ml_pipeline.training.train_transformer $(MPD_DATA) --epochs 150 \
	--eval-every 10 --loss sampled_softmax --num-negatives 256 --embedding-dim 64 --dropout 0.2 \
	--lr 0.001 --batch-size 128 --sparse-items
reproduce-mpd: $(STAMP)
	$(BIN)/python -m ml_pipeline.evaluation.evaluate_baselines $(MPD_DATA)
	$(MPD_TRAIN) --output var/models/sasrec_mpd_reduced$(MPD_SUFFIX).pt
	$(BIN)/python -m ml_pipeline.evaluation.report

# The cold-start tables: baselines, SASRec and the hybrid on the cold-track split (10% of the
# tracks held out of training), and the hybrid on leave-one-out (warm tracks, new listeners,
# LLaRA's 20 candidates). About 90 minutes on 2 idle cores; not part of CI.
reproduce-cold-start: $(STAMP)
	$(BIN)/python -m ml_pipeline.evaluation.evaluate_baselines $(MPD_DATA) --split cold-track \
		--model most_popular --model item_knn --model lightgcn --model text_knn --model lightgcn_text
	$(MPD_TRAIN) --split cold-track --output var/models/sasrec_cold$(MPD_SUFFIX).pt
	$(MPD_TRAIN) --model hybrid --split cold-track --output var/models/hybrid_cold$(MPD_SUFFIX).pt
	$(MPD_TRAIN) --model hybrid --output var/models/hybrid_mpd_reduced$(MPD_SUFFIX).pt
	$(BIN)/python -m ml_pipeline.evaluation.report

# Seconds per SASRec training epoch, ours against RecBole's SASRec, on the paper's Amazon Games
# data and configuration (about 15 minutes on 2 idle cores). RecBole lives in a benchmark
# environment of its own, never in .venv: torch first from the local CPU wheel, then RecBole and
# the few packages the benchmark imports, all held to the project's pins (constraints from
# pyproject.toml) so that pip never resolves torch itself. Writes
# results/benchmarks/training_speed.json.
BENCH_VENV := .venv-recbole
BENCH_STAMP := $(BENCH_VENV)/.installed
$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet torch==2.13.0 $(PIP_QUIET)
	$(BENCH_VENV)/bin/python -c 'import re, tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print("\n".join(re.sub(r"\[.*?\]", "", d) for d in deps))' > $(BENCH_VENV)/constraints.txt
	$(BENCH_VENV)/bin/python -m pip install --quiet -c $(BENCH_VENV)/constraints.txt \
		recbole==1.2.1 SQLAlchemy alembic typer pydantic pydantic-settings $(PIP_QUIET)
	touch $@

bench-training: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.training_speed --data $(SHARED_DATA)/sasrec_games/Video.txt

# p50/p99 and the highest sustained request rate of the serving stack on loopback (user
# recommendations and /predict, embedded and services mode, 50,000-track catalog), with an
# in-process profile; about 8 minutes on 2 cores (the setup is cached in the temp dir). Writes
# results/benchmarks/serving.json.
bench-serving: $(STAMP) services
	$(BIN)/python -m benchmarks.serving

# The feedback loop: an accepted event visible in the online features (p50/p99, embedded and
# services mode on the mock Kafka broker), and 100,000 events through a consumer killed with
# SIGKILL five times (0 lost, 0 duplicated). A few minutes; JSON in results/benchmarks/.
bench-feedback: $(STAMP) services
	$(BIN)/python -m benchmarks.freshness
	$(BIN)/python -m benchmarks.consumer_crash

# Fault injection under steady load, services mode (Postgres and Redis through fault proxies, the
# mock Kafka broker, the API, consumer and relay as processes): kill -9 of each process, Redis and
# Postgres refused or frozen, Kafka down, a request body that never ends. Lost, duplicated, 5xx,
# recovery time and latency per fault against the goals. About 7 minutes on 2 cores
# (CHAOS_ARGS=--quick: about 4); JSON in results/benchmarks/chaos.json, and its table for
# docs/operations.md on stderr (CHAOS_ARGS=--markdown prints that table again, running nothing).
bench-chaos: $(STAMP) services
	$(BIN)/python -m benchmarks.chaos $(CHAOS_ARGS)

# The two-stage recommender end to end: trained on the continuation split's training files,
# served by `musicrec serve`, asked through POST /predict about the held-out test playlists:
# quality (equal to the offline evaluation's) and latency per stage and over HTTP, beside
# /healthz, with the load average. About 10 minutes; results/benchmarks/recommender.json.
bench-predict: $(STAMP)
	$(BIN)/python -m benchmarks.recommender --data $(SHARED_DATA)/mpd_reduced

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(COMPOSE_VENV) test-artifacts var runs mlruns .pytest_cache .mypy_cache .ruff_cache

# The interest graph's effect on ranking (docs/results.md, "Interest graph in ranking"): the
# reduced MPD ingested into its own database under var/mpd, SASRec trained on 80% of the
# playlists, re-ranking measured on the rest. About 5 minutes on 2 cores; not part of CI.
MPD_VAR ?= var/mpd
reproduce-interest-graph: $(STAMP)
	VAR_DIR=$(MPD_VAR) $(BIN)/musicrec db upgrade
	VAR_DIR=$(MPD_VAR) $(BIN)/musicrec ingest mpd $(SHARED_DATA)/mpd_reduced
	VAR_DIR=$(MPD_VAR) $(BIN)/musicrec ingest audio-features $(SHARED_DATA)/audio_features
	VAR_DIR=$(MPD_VAR) $(BIN)/python -m ml_pipeline.evaluation.evaluate_interest_graph --epochs 40
	$(BIN)/python -m ml_pipeline.evaluation.report

# Redis memory per listener, track and listener–track pair on the MPD playlists (the sizing
# table of infra/README.md). Needs Postgres and Redis; about 3 minutes.
bench-redis-sizing: $(STAMP) services
	$(BIN)/python -m benchmarks.redis_sizing --data $(SHARED_DATA)/mpd_reduced \
		--audio-features $(SHARED_DATA)/audio_features
