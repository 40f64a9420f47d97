"""Runs over real MPD playlists on SQLite and the real Postgres: the table filled with valid
graphs, resumed runs, one retry on an invalid answer, failures stored with their reason, a
provider that cannot serve stopping the run with what was stored kept; and the CLI's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from apps.cli import app
from inference.interest_graph.schema import GRAPH_VERSION, InterestGraph
from ml_pipeline.interest_graph.generate import ProviderNotReady, generate_interest_graphs
from ml_pipeline.interest_graph.local import LocalProvider
from ml_pipeline.interest_graph.providers import ProviderError, ProviderUnavailable, Usage
from musicrec.config import Settings
from musicrec.db.models import FEAT_USER_INTEREST_GRAPH, User, UserInterestGraph
from tests.conftest import backends
from tests.ml_pipeline.interest_graph.scripted import Scripted

G = UserInterestGraph.__table__.c


def rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(UserInterestGraph.__table__)).mappings()]


@backends
def test_local_run_fills_the_table_with_valid_graphs_and_resumes(
    mpd: Engine, tmp_path: Path
) -> None:
    settings = Settings(var_dir=tmp_path)
    with mpd.connect() as conn:
        listeners = conn.execute(select(func.count()).select_from(User.__table__)).scalar_one()
    report = generate_interest_graphs(mpd, settings, LocalProvider(), batch_size=7)
    assert (report.done, report.failed, report.skipped) == (listeners, 0, 0)
    stored = rows(mpd)
    assert len(stored) == listeners
    for row in stored:
        assert (row["status"], row["provider"], row["model"]) == ("ok", "local", "local-facets-v1")
        assert row["version"] == GRAPH_VERSION and row["error"] is None
        graph = InterestGraph.model_validate(row["graph"])
        assert any(node.kind == "artist" for node in graph.nodes)
    again = generate_interest_graphs(mpd, settings, LocalProvider())
    assert (again.done, again.skipped) == (0, listeners)
    # A listener whose graph is from an earlier month is due again.
    with mpd.begin() as conn:
        conn.execute(
            update(UserInterestGraph.__table__)
            .where(G.user_id == 1)
            .values(generated_at=stored[0]["generated_at"].replace(year=2020))
        )
    assert generate_interest_graphs(mpd, settings, LocalProvider()).done == 1
    forced = generate_interest_graphs(mpd, settings, LocalProvider(), force=True, user_id=2)
    assert (forced.done, forced.skipped) == (1, 0)


VALID = '{"nodes": [{"id": "g", "kind": "genre", "label": "pop", "weight": 0.9}]}'


@backends
def test_an_invalid_answer_is_retried_once_quoting_the_error(mpd: Engine, tmp_path: Path) -> None:
    provider = Scripted(['{"nodes": []}', VALID])
    report = generate_interest_graphs(mpd, Settings(var_dir=tmp_path), provider, user_id=1)
    assert (report.done, report.failed) == (1, 0)
    assert report.usage == Usage(200, 40)  # both requests counted
    retry = provider.requests[1].messages
    assert retry[1].content == '{"nodes": []}'
    assert "List should have at least 1 item" in retry[2].content
    assert rows(mpd)[0]["graph"]["nodes"][0]["label"] == "pop"


@backends
def test_failures_are_stored_with_their_reason_and_nothing_invalid(
    mpd: Engine, tmp_path: Path
) -> None:
    provider = Scripted(["not json", "still not json", ProviderError("HTTP 429 after 5 attempts")])
    settings = Settings(var_dir=tmp_path, llm_concurrency=1)
    report = generate_interest_graphs(mpd, settings, provider, user_id=1)
    generate_interest_graphs(mpd, settings, provider, user_id=2)
    assert (report.done, report.failed) == (0, 1)
    first, second = sorted(rows(mpd), key=lambda r: r["user_id"])
    assert (first["status"], first["graph"]) == ("failed", None)
    assert first["error"] == "invalid graph after a retry: the answer holds no JSON object"
    assert second["error"] == "scripted: HTTP 429 after 5 attempts"
    # Failed listeners are due again on the next run.
    assert generate_interest_graphs(mpd, settings, Scripted([VALID]), user_id=1).done == 1


def test_an_unavailable_provider_stops_the_run_keeping_stored_batches(
    mpd: Engine, tmp_path: Path
) -> None:
    settings = Settings(var_dir=tmp_path, llm_concurrency=1)
    provider = Scripted([VALID, VALID, ProviderUnavailable("HTTP 401: invalid x-api-key")])
    with pytest.raises(ProviderNotReady, match="invalid x-api-key .2 listeners stored"):
        generate_interest_graphs(mpd, settings, provider, batch_size=2)
    assert len(rows(mpd)) == 2
    resumed = generate_interest_graphs(mpd, settings, Scripted([VALID] * 100))
    assert resumed.skipped == 2 and resumed.done > 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give exactly one of --user-id ID and --all-users"),
        (["--user-id", "1", "--all-users"], 2, "give exactly one of"),
        (["--user-id", "999999"], 1, "no listener with id 999999"),
        (["--all-users", "--provider", "gemini"], 1, "--provider must be one of"),
        (["--all-users", "--provider", "anthropic"], 3, "ANTHROPIC_API_KEY"),
    ],
)
def test_cli_errors_are_one_line(settings_env, args: list[str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    settings_env(anthropic_api_key="")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    reply = runner.invoke(app, ["interest-graph", *args])
    assert reply.exit_code == code, reply.output
    assert message in reply.output
    assert "Traceback" not in reply.output


def test_cli_runs_the_local_provider(settings_env, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    settings_env()
    runner = CliRunner()
    files = sorted((shared_data / "mpd_reduced").glob("*.json"))[:2]
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["ingest", "mpd", *map(str, files)]).exit_code == 0
    reply = runner.invoke(app, ["interest-graph", "--all-users", "--provider", "local"])
    assert reply.exit_code == 0, reply.output
    assert "done, 0 failed, 0 skipped" in reply.output


def test_an_unreachable_online_store_does_not_stop_the_run(mpd: Engine, tmp_path: Path) -> None:
    # Nothing listens on port 1: the profiles stay in the feature table for materialization.
    settings = Settings(var_dir=tmp_path, feast_redis_host="127.0.0.1", feast_redis_port=1)
    report = generate_interest_graphs(mpd, settings, LocalProvider(), batch_size=10)
    assert report.done > 0 and report.not_pushed == report.done
    with mpd.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(FEAT_USER_INTEREST_GRAPH))
        assert stored.scalar_one() == report.done
