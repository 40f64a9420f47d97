"""Client API keys on both databases: only hashes stored, verification from memory, revocation
that takes effect within the cache period, and no query storm from unknown keys."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, event, select, text

from apps.api.security import ApiKeys
from musicrec.db.models import ApiKey
from musicrec.errors import UserError
from tests.conftest import backends


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def counting_queries(engine: Engine) -> Iterator[list[str]]:
    queries: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("SELECT"):  # not SQLite's explicit BEGIN
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield queries
    finally:
        event.remove(engine, "before_cursor_execute", count)


@backends
def test_create_stores_only_the_hash(engine: Engine) -> None:
    keys = ApiKeys(engine, 30)
    key, other = keys.create("web-app"), keys.create("ios_app.v2")
    assert key.startswith("mr_") and len(key) == 46 and other != key

    with engine.connect() as conn:
        rows = conn.execute(select(ApiKey.__table__).order_by(ApiKey.id)).mappings().all()
    assert [r["name"] for r in rows] == ["web-app", "ios_app.v2"]
    row = rows[0]
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:8]
    assert row["created_at"] is not None and row["revoked_at"] is None
    stored = " ".join(str(value) for r in rows for value in r.values())
    assert key not in stored and key[8:20] not in stored


@backends
def test_verify_answers_from_memory_after_one_load(engine: Engine) -> None:
    key = ApiKeys(engine, 0).create("web")
    api = ApiKeys(engine, 30, clock=Clock())  # another process: knows nothing yet
    with counting_queries(engine) as queries:
        info = api.verify(key)
        assert len(queries) == 1
        for _ in range(200):
            assert api.verify(key) == info
        assert len(queries) == 1
    assert info is not None and info.name == "web" and info.prefix == key[:8] and info.active
    assert api.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


@backends
def test_revoked_key_stops_working_within_the_cache_period(engine: Engine) -> None:
    clock = Clock()
    admin, api = ApiKeys(engine, 0), ApiKeys(engine, 30, clock=clock)
    key = admin.create("web")
    assert api.verify(key) is not None

    assert admin.revoke("web") is True
    assert admin.revoke("web") is False  # already revoked
    assert admin.revoke("nobody") is False
    clock.now += 29.9
    assert api.verify(key) is not None  # still cached
    clock.now += 0.1
    assert api.verify(key) is None
    assert admin.verify(key) is None

    # Revoked by the same process: refused at once.
    second = api.create("mobile")
    assert api.verify(second) is not None
    assert api.revoke("mobile") is True
    assert api.verify(second) is None


@backends
def test_unknown_keys_reload_at_most_once_per_period(engine: Engine) -> None:
    clock = Clock()
    admin, api = ApiKeys(engine, 0), ApiKeys(engine, 30, clock=clock)
    garbage = [f"mr_{i:043d}" for i in range(50)]
    with counting_queries(engine) as queries:
        assert api.verify("not-even-our-format") is None
        assert api.verify("mr_" + "x" * 500) is None
        assert queries == []  # refused without a lookup
        assert api.verify(garbage[0]) is None
        assert len(queries) == 1  # the first load

        clock.now += 10
        new_key = admin.create("new")  # by another process, after this one loaded
        queries.clear()
        assert api.verify(new_key) is not None  # an unknown key: one reload
        assert len(queries) == 1
        later = admin.create("later")
        queries.clear()
        assert all(api.verify(g) is None for g in garbage)
        assert api.verify(later) is None  # this period's reload for unknown keys is spent
        assert queries == []

        clock.now += 30  # the cache expires: a reload, and unknown keys may reload once more
        assert api.verify(later) is not None
        assert all(api.verify(g) is None for g in garbage)
        assert len(queries) == 2
        clock.now += 29.9
        assert all(api.verify(g) is None for g in garbage)
        assert len(queries) == 2


@backends
def test_names_are_checked_with_readable_errors(engine: Engine) -> None:
    keys = ApiKeys(engine, 30)
    for name, message in [
        ("", "1 to 64 characters"),
        ("x" * 65, "1 to 64 characters, not 65"),
        ("web app", "use letters, digits"),
        ("-web", "starting with a letter or digit"),
        ("wéb", "use letters, digits"),
        ("web\n", "use letters, digits"),
    ]:
        with pytest.raises(UserError, match=message):
            keys.create(name)
    keys.create("x" * 64)
    keys.create("web")
    with pytest.raises(UserError, match="an API key named 'web' already exists"):
        keys.create("web")
    keys.revoke("web")
    with pytest.raises(UserError, match="already exists"):
        keys.create("web")
    assert [k.name for k in keys.list()] == ["x" * 64, "web"]


@backends
def test_list_shows_revoked_keys(engine: Engine) -> None:
    keys = ApiKeys(engine, 30)
    assert keys.list() == []
    first, _ = keys.create("a"), keys.create("b")
    keys.revoke("a")
    listed = keys.list()
    assert [(k.name, k.active) for k in listed] == [("a", False), ("b", True)]
    assert listed[0].prefix == first[:8] and listed[0].revoked_at is not None


@backends
def test_failed_reload_keeps_serving_the_cached_keys(engine: Engine) -> None:
    clock = Clock()
    api = ApiKeys(engine, 30, clock=clock)
    key = api.create("web")
    assert api.verify(key) is not None
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE api_keys RENAME TO api_keys_gone"))
    clock.now += 31
    assert api.verify(key) is not None
    fresh = ApiKeys(engine, 30, clock=clock)
    with pytest.raises(Exception, match="api_keys"):
        fresh.verify(key)  # nothing cached to fall back on


def test_verify_is_thread_safe_while_keys_change(engine: Engine) -> None:
    api = ApiKeys(engine, 0.001)
    keys = [api.create(f"k{i}") for i in range(5)]
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(200):
                for key in keys:
                    assert api.verify(key) is not None
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    extra = [api.create(f"extra{i}") for i in range(5)]
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(api.verify(key) is not None for key in extra)


@backends
def test_a_key_acts_for_an_app_with_scopes(engine: Engine) -> None:
    keys = ApiKeys(engine, 30)
    default = keys.create("web")
    mpd = keys.create("ops-page", app="mpd", scopes=["admin", "read", "admin"])
    info = ApiKeys(engine, 30).verify(default)  # from the database
    assert info is not None and info.app == "web" and info.scopes == ("read", "write")
    info = ApiKeys(engine, 30).verify(mpd)
    assert info is not None and info.app == "mpd" and info.scopes == ("read", "admin")
    assert keys.verify(mpd) == info  # the creating process caches the same details
    with engine.connect() as conn:
        stored = conn.execute(select(ApiKey.name, ApiKey.app, ApiKey.scopes).order_by(ApiKey.id))
        assert [tuple(row) for row in stored] == [
            ("web", "web", "read,write"),
            ("ops-page", "mpd", "read,admin"),
        ]
    assert [(k.name, k.app, k.scopes) for k in keys.list()] == [
        ("web", "web", ("read", "write")),
        ("ops-page", "mpd", ("read", "admin")),
    ]


@backends
def test_apps_and_scopes_are_checked_with_readable_errors(engine: Engine) -> None:
    keys = ApiKeys(engine, 30)
    for kwargs, message in [
        ({"app": "a:b"}, "invalid app name 'a:b': use letters, digits"),
        ({"app": ""}, "an app name has 1 to 64 characters, not 0"),
        ({"scopes": ["read", "delete"]}, "unknown scope 'delete': a scope is read, write, admin"),
        ({"scopes": []}, "a key needs at least one scope"),
    ]:
        with pytest.raises(UserError, match=message):
            keys.create("web", **kwargs)  # type: ignore[arg-type]
    assert keys.list() == []
