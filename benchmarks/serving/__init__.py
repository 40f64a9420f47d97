"""Serving latency and throughput on loopback: p50/p99 and the highest sustained request rate of
`GET /v1/users/{id}/recommendations` (k=10) and `POST /predict` (5 seeds by name, k=20), in
embedded and services mode, on a 50,000-track catalog, against the issue's targets (p99 <= 15 ms,
>= 1,000 req/s on 2 cores). Prints JSON (also kept as results/benchmarks/serving.json).

    python -m benchmarks.serving [--requests 2000] [--step-seconds 5] [--modes embedded,services]

Setup, cached under the temp dir (keyed by the code that shapes it; --fresh rebuilds): the
synthetic generator's catalog (50,000 tracks, 5,000 artists, 10 genres: the re-ranker has work)
with 2,000 listeners' plays over two weeks, migrated, written and materialized into SQLite and
Feast's SQLite online store; an untrained SASRec of serving size (d = 64, 2 blocks, last 50
items) saved with the catalog as vocabulary and exported as the int8 graph with in-graph top 200
(latency does not depend on the weights). Services mode loads the same batch into a Postgres
schema and a Redis project of its own, both removed at the end.

Servers are `musicrec serve` (and `musicrec serve-ml`) subprocesses, one worker each, rate limit
raised out of the way. The load generator (benchmarks.loadgen) is a minimal asyncio HTTP/1.1
keep-alive client in this process (pre-encoded requests): it competes with the servers for the
cores, so its CPU time is reported beside theirs. Per mode and route:
- concurrency 1: p50/p99 of --requests requests after a warm-up;
- an open-loop sweep: requests due at a fixed rate for --step-seconds per rate over up to
  CONNECTIONS keep-alive connections. A request due while every connection is busy counts from
  when it was due (a server that falls behind cannot hide its backlog: no coordinated
  omission); one sent on time counts from its send (not the client timer's lateness, reported
  apart). The sweep stops at the first rate not sustained, then refines below it (REFINEMENTS
  steps). Sustained: achieved >= 95% of offered, no error, no fallback answer (popularity when
  the ML service or the feature store is too slow), every request answered within
  DRAIN_SECONDS after the step, p99 <= 1 s.
GET /healthz through the same server is the baseline (the framework's own floor and ceiling);
the ML service called in-process (no HTTP) with cProfile shows where the time goes.

The modules: workload (the catalog, model and cached state), routes (the HTTP runs and the
targets), in_process (the ML service without HTTP, profiled), modes (one mode end to end, and
the summary), __main__ (the command and its JSON).
"""

# benchmarks/chaos/stack.py imports these two from here (they now live in benchmarks.servers).
from benchmarks.servers import get as _get  # noqa: F401
from benchmarks.servers import server_env as _server_env  # noqa: F401
