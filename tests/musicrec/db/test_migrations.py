"""The migrations create exactly the models' schema and come down cleanly, on both backends."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from musicrec.db.migrate import downgrade, is_current, upgrade
from musicrec.db.models import Base
from tests.conftest import backends

TABLES = {
    "users",
    "artists",
    "tracks",
    "playlists",
    "playlist_tracks",
    "listening_events",
    "user_interest_graph",
    "api_keys",
    "feat_user_recent_tracks",
    "exposures",
}


@backends
def test_upgrade_matches_models_and_downgrade_is_clean(empty_engine: Engine) -> None:
    assert not is_current(empty_engine)
    upgrade(empty_engine)
    assert is_current(empty_engine)
    assert TABLES <= set(inspect(empty_engine).get_table_names())
    with empty_engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []

    downgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_engine)  # and back up again
    assert TABLES <= set(inspect(empty_engine).get_table_names())


@backends
def test_event_indexes_for_feature_and_trainer_queries(engine: Engine) -> None:
    indexes = {tuple(i["column_names"]) for i in inspect(engine).get_indexes("listening_events")}
    assert {("user_id", "occurred_at"), ("track_id", "occurred_at"), ("occurred_at",)} <= indexes


@backends
def test_upgrade_keeps_existing_rows(empty_engine: Engine) -> None:
    from musicrec.db.bulk import write_batch
    from musicrec.db.stats import catalog_counts
    from tests.musicrec.db.test_bulk import _batch

    upgrade(empty_engine, "0001")
    write_batch(empty_engine, _batch())  # rows that reference tracks, which 0002 rebuilds
    before = catalog_counts(empty_engine)
    upgrade(empty_engine)
    assert catalog_counts(empty_engine) == before
    with empty_engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT count(*) FROM tracks WHERE updated_at IS NULL").scalar()
            == 0
        )
    downgrade(empty_engine, "0001")
    assert catalog_counts(empty_engine) == before


@backends
def test_keys_made_before_scopes_keep_working(empty_engine: Engine) -> None:
    """0008 gives an existing key its name as app and the scopes it had (read, write), and makes
    room for stored listener ids ("<app>:<id>") of up to 200 characters."""
    from sqlalchemy import text

    from apps.api.security import ApiKeys, hash_key
    from musicrec.events import USER_ID_MAX_CHARS

    upgrade(empty_engine, "0007")
    plaintext = "mr_" + "k" * 43
    with empty_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO api_keys (name, prefix, key_hash) VALUES ('old-app', :p, :h)"),
            {"p": plaintext[:8], "h": hash_key(plaintext)},
        )
        conn.execute(text("INSERT INTO users (external_id) VALUES ('mpd:mpd_reduced:7')"))
    upgrade(empty_engine)
    info = ApiKeys(empty_engine, 0).verify(plaintext)
    assert info is not None and (info.name, info.app) == ("old-app", "old-app")
    assert info.scopes == ("read", "write")
    long_id = "a" * 64 + ":" + "u" * (USER_ID_MAX_CHARS - 65)
    with empty_engine.begin() as conn:
        conn.execute(text("INSERT INTO users (external_id) VALUES (:u)"), {"u": long_id})
        users = conn.execute(text("SELECT external_id FROM users ORDER BY id")).scalars().all()
    assert users == ["mpd:mpd_reduced:7", long_id]
    with empty_engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE external_id = :u"), {"u": long_id})
    downgrade(empty_engine, "0007")
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM api_keys")).scalars().all() == ["old-app"]


@backends
def test_exposures_come_and_go_with_0009(empty_engine: Engine) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from apps.ml.exposures import EXPOSURES

    upgrade(empty_engine, "0008")
    upgrade(empty_engine)
    row = {
        "served_at": datetime(2026, 11, 20, 12, 0, 0, 250_000, tzinfo=UTC),
        "user_id": "tests:u1",
        "model_version": "musicrec-sasrec@v2",
        "request_id": None,
        "tracks": ["spotify:track:a", "spotify:track:b"],
    }
    with empty_engine.begin() as conn:
        conn.execute(EXPOSURES.insert(), row)
        stored = conn.execute(select(EXPOSURES.c.tracks, EXPOSURES.c.served_at)).one()
    assert stored.tracks == row["tracks"]
    served = stored.served_at
    assert (served if served.tzinfo else served.replace(tzinfo=UTC)) == row["served_at"]
    downgrade(empty_engine, "0008")
    assert "exposures" not in inspect(empty_engine).get_table_names()
    assert "api_keys" in inspect(empty_engine).get_table_names()
