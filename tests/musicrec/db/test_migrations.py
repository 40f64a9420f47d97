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
