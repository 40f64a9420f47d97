#!/usr/bin/env bash
# Make sure the local Postgres and Redis the tests use are running; start them when they are
# installed but stopped. Under CI=true a service that cannot be reached fails the run.
set -u
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 20); do pg_up && break; sleep 0.5; done
fi
if ! redis_up && command -v redis-server >/dev/null; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
  for _ in $(seq 20); do redis_up && break; sleep 0.5; done
fi

missing=()
pg_up || missing+=("PostgreSQL at 127.0.0.1:5432")
redis_up || missing+=("Redis at 127.0.0.1:6379")
if [ ${#missing[@]} -gt 0 ]; then
  echo "not reachable: ${missing[*]}" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "tests that need them will fail with a message" >&2
fi
exit 0
