# syntax=docker/dockerfile:1
# One image for every musicrec process: the process is the argument (ENTRYPOINT is the CLI).
#   docker build -t musicrec:local .
#   docker run musicrec:local serve --host 0.0.0.0          (the default)
#   docker run musicrec:local serve-ml --host 0.0.0.0 | consume-feedback | relay-outbox
#   docker run musicrec:local features materialize | retrain | interest-graph --all-users
# Configuration only through the environment variables of README.md's configuration table.

# ---- build stage: compilers live here only ------------------------------------------------
FROM python:3.11-slim AS build

# build-essential for any dependency without a wheel for this platform; never in the final stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the CPU index: any other torch request (pyproject's torch==2.13.0 from PyPI)
# resolves the CUDA build, gigabytes the CPU-only machines never use. Its own layer, so source
# changes do not download it again.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Only what the package and the migrations need (pyproject's package find: musicrec,
# feature_store, inference, ml_pipeline, apps; alembic.ini finds db/migrations next to itself; README is the readme).
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY musicrec/ musicrec/
COPY inference/ inference/
COPY ml_pipeline/ ml_pipeline/
COPY apps/ apps/
COPY feature_store/ feature_store/
COPY db/ db/
COPY benchmarks/ benchmarks/
# Editable: musicrec.config.REPO_ROOT is the source folder (/app), where alembic.ini, db/migrations
# and feature_store/ are found; torch==2.13.0+cpu already satisfies the pin, so pip keeps it.
# Then the bytecode for optimized mode (PYTHONOPTIMIZE below), written once here: with none on
# disk every process start would compile the sources again (torch/testing holds Python
# 3.12-only files, never imported).
RUN pip install -e . \
    && python -O -m compileall -q -j 0 -x "/torch/testing/" /opt/venv/lib /app

# ---- final stage: the venv and the source, no compilers, not root -------------------------
FROM python:3.11-slim

RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin musicrec

# /app at the same path as in the build stage: the editable install points there.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

# VAR_DIR (embedded state, embedding cache, TensorBoard runs) is the one writable volume path;
# feature_store/ is writable because `features apply` writes feature_store.yaml there.
RUN mkdir -p /var/lib/musicrec/runs \
    && chown -R musicrec:musicrec /var/lib/musicrec /app/feature_store

# HF_HUB_OFFLINE: the text encoder ships in a package; never reach for the Hugging Face Hub.
# PYTHONOPTIMIZE: Feast's @typechecked classes are not re-instrumented by typeguard at every
# import (a process starts about 2.5 s sooner; the code's asserts only narrow types).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONOPTIMIZE=1 \
    VAR_DIR=/var/lib/musicrec \
    TENSORBOARD_DIR=/var/lib/musicrec/runs \
    HF_HUB_OFFLINE=1

# Numeric, so Kubernetes can verify runAsNonRoot against the image itself.
USER 10001:10001
# 8000: public API (serve), 8001: ML service (serve-ml).
EXPOSE 8000 8001

ENTRYPOINT ["musicrec"]
CMD ["serve", "--host", "0.0.0.0"]
