"""Fault injection under steady load: what the services-mode stack loses, duplicates, answers
with 5xx, and how long it takes to recover when one of its parts dies or hangs. Prints JSON
(also kept as results/benchmarks/chaos.json).

    python -m benchmarks.chaos [--quick] [--faults api_kill,consumer_kill,...] [--no-body-check]

The stack, all on loopback: a Postgres schema of its own and a Redis project of its own (the API
tests' serving setup, tests/apps/serving_env.py: 36 tracks, 40 listeners, features
materialized; an untrained SASRec exported for serving: latency and delivery do not depend on
the weights), librdkafka's mock Kafka broker in this process (benchmarks/faults.py), and three
`musicrec` subprocesses: `serve` (the API, ML service embedded), `consume-feedback` and
`relay-outbox`. They reach Postgres and Redis through TCP proxies that can refuse or freeze the
link (the servers themselves are shared and never touched).

Load, open loop for the whole run: 50 recommendation requests/s (GET
/v1/users/{id}/recommendations) and 4 feedback events/s (POST /v1/feedback, batches of 2, each
event with an event_id of ours), one connection per request, a 10 s client timeout; latency
counts from when a request was due. Not 50 events/s: the feedback consumer stores only ~7-10
events/s here (each event's online-feature push costs ~0.1 s, mostly Feast listing feature
services from its SQL registry), so at 50/s the backlog grows for the whole run and no fault's
delivery could be told from it (--events-per-second 50 shows that case; events still in Kafka
at the end are then counted as pending, not lost). Then, in turn (each after a few seconds of
steady load):

- api_kill (twice), consumer_kill: kill -9 of the process group, restarted at once (as a
  supervisor would: the fault ends at the kill);
- relay_kill: Kafka down until the outbox fills; the relay is killed -9 while it is blocked
  publishing rows it holds locked, and its successor again 0.05 s after Kafka is back (while
  it retries or drains), each restarted at once;
- redis_refuse, redis_hang, postgres_refuse, postgres_hang: the proxy refuses connections (and
  cuts the open ones), or freezes every connection (accepted, nothing forwarded), for the
  outage time (20 s; --quick: 5 s);
- kafka_outage: the mock broker disconnects every client and refuses new ones (its data and
  offsets are kept) for the outage time;
- body_read_timeout: requests whose body is shorter than their Content-Length, sent on raw
  sockets held open: when (if) the server answers or closes, and whether the load meanwhile
  is served as before.

After the last fault the load stops and the pipeline drains; then every event the API
acknowledged (202) must be in listening_events or dead_events exactly once. Per fault: lost,
duplicated, 5xx, connection errors, recovery (requests, and events reaching the database), p50
and p99 latency, the load average at the fault's start and end; each goal with whether it was
met. A process that exits on its own is restarted like a killed one and reported.

The `musicrec` processes run through benchmarks/faults.py's launcher, which only gives their
kafka-python clients the protocol version the mock broker needs (they cannot detect it).

    python -m benchmarks.chaos --markdown [results/benchmarks/chaos.json]

prints the Markdown table of a run's JSON (docs/operations.md, "Measured") without running.

The modules, one concept each: plan (faults, goals, rates and waits), stack (the processes and
the served database), load (the requests), scenarios (what each fault does), body (the
body-read check), ledger (where events ended up), report (the figures and the JSON), table
(the Markdown table for docs/operations.md), suite (the run), __main__ (the command line).
"""

from benchmarks.chaos.plan import FAULTS, GOALS, QUICK, Plan
from benchmarks.chaos.suite import run
from benchmarks.chaos.table import markdown

__all__ = ["FAULTS", "GOALS", "QUICK", "Plan", "markdown", "run"]
