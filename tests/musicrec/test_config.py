from pathlib import Path

import pytest

from musicrec.config import Settings


def test_defaults_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "FEAST_REDIS_HOST", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(var_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'musicrec.db'}"
    assert (s.database_backend, s.online_store, s.event_transport) == (
        "sqlite",
        "sqlite",
        "in-process",
    )


def test_environment_switches_to_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db:5432/music")
    monkeypatch.setenv("FEAST_REDIS_HOST", "redis")
    monkeypatch.setenv("FEAST_REDIS_PORT", "6380")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    s = Settings()
    assert s.database_url == "postgresql+psycopg2://app@db:5432/music"
    assert (s.database_backend, s.online_store, s.event_transport) == (
        "postgresql",
        "redis",
        "kafka",
    )
    assert s.feast_redis_port == 6380
    assert s.anthropic_api_key is not None
    assert "sk-test" not in repr(s)  # secrets never print


def test_mpd_path_prefers_the_environment(tmp_path: Path) -> None:
    assert Settings(mpd_path=tmp_path).default_mpd_path == tmp_path
    assert Settings(shared_data_dir=tmp_path).default_mpd_path is None
    (tmp_path / "mpd_reduced").mkdir()
    assert Settings(shared_data_dir=tmp_path).default_mpd_path == tmp_path / "mpd_reduced"
