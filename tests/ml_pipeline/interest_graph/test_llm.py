"""The anthropic and openai providers: the real SDKs against a local server that speaks each
vendor's API (success, 429 then success, 5xx then success, timeout, malformed JSON, refused
key), and a whole run whose model answers a schema-invalid graph, then a valid one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ml_pipeline.interest_graph.generate import generate_interest_graphs, make_provider
from ml_pipeline.interest_graph.llm import AnthropicProvider, LanguageModelProvider, OpenAIProvider
from ml_pipeline.interest_graph.providers import (
    GraphRequest,
    Message,
    ProviderError,
    ProviderUnavailable,
    Usage,
)
from musicrec.config import Settings
from musicrec.db.models import UserInterestGraph
from tests.ml_pipeline.interest_graph.fake_llm_server import FakeLLMServer, Reply, error_body
from tests.ml_pipeline.interest_graph.test_generate import VALID

VENDORS = ["anthropic", "openai"]
REQUEST = GraphRequest(system="be brief", messages=[Message("user", "hello")], summary=None)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def settings_for(vendor: str, server: FakeLLMServer, **extra: Any) -> Settings:
    base = server.url if vendor == "anthropic" else f"{server.url}/v1"
    return Settings(
        **{
            f"{vendor}_api_key": "test-key",
            f"{vendor}_base_url": base,
            f"{vendor}_model": "model-x",
            "llm_timeout_seconds": 2.0,
            "llm_max_retries": 2,
            "llm_backoff_seconds": 0.5,
            **extra,
        }
    )


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def provider(vendor: str, settings: Settings, sleeps: Sleeps) -> LanguageModelProvider:
    kind = AnthropicProvider if vendor == "anthropic" else OpenAIProvider
    return kind(settings, sleep=sleeps)


@pytest.mark.parametrize("vendor", VENDORS)
def test_success_sends_model_system_and_messages(vendor: str, server: FakeLLMServer) -> None:
    server.replies.append(Reply(text='{"nodes": "as it came"}'))
    completion = provider(vendor, settings_for(vendor, server), Sleeps()).generate(REQUEST)
    assert completion.text == '{"nodes": "as it came"}'  # passed through: validation is not here
    assert completion.usage == Usage(120, 30)
    path, headers, body = server.requests[0]
    assert body["model"] == "model-x"
    assert headers["authorization"] == "Bearer test-key"  # both SDKs send the key so
    if vendor == "anthropic":
        assert path == "/v1/messages" and "anthropic-version" in headers
        assert body["system"] == "be brief"
        assert body["messages"] == [{"role": "user", "content": "hello"}]
        assert body["max_tokens"] == 2048
    else:
        assert path == "/v1/chat/completions"
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
        assert body["messages"][1] == {"role": "user", "content": "hello"}
        assert body["response_format"] == {"type": "json_object"}
        assert body["max_completion_tokens"] == 2048


@pytest.mark.parametrize("vendor", VENDORS)
def test_429_is_retried_after_the_servers_retry_after(vendor: str, server: FakeLLMServer) -> None:
    limited = Reply(429, error_body(429, "rate limited"), headers={"retry-after": "7"})
    server.replies.extend([limited, Reply(text="{}")])
    sleeps = Sleeps()
    completion = provider(vendor, settings_for(vendor, server), sleeps).generate(REQUEST)
    assert completion.text == "{}" and len(server.requests) == 2
    assert sleeps == [7.0]


@pytest.mark.parametrize(("vendor", "status"), [("anthropic", 529), ("openai", 500)])
def test_5xx_is_retried_with_exponential_backoff(
    vendor: str, status: int, server: FakeLLMServer
) -> None:
    failing = Reply(status, error_body(status, "overloaded"))
    server.replies.extend([failing, failing, Reply(text="{}")])
    sleeps = Sleeps()
    provider(vendor, settings_for(vendor, server), sleeps).generate(REQUEST)
    assert len(server.requests) == 3
    # Backoff 0.5 s then 1 s, each with jitter in [half, whole].
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("vendor", VENDORS)
def test_retries_exhausted_fail_the_request(vendor: str, server: FakeLLMServer) -> None:
    server.replies.append(Reply(503, error_body(503, "unavailable")))
    llm = provider(vendor, settings_for(vendor, server), Sleeps())
    with pytest.raises(ProviderError, match="HTTP 503.*after 3 attempts"):
        llm.generate(REQUEST)


@pytest.mark.parametrize("vendor", VENDORS)
def test_timeout_fails_the_request_after_the_retries(vendor: str, server: FakeLLMServer) -> None:
    server.replies.append(Reply(text="{}", delay=1.0))
    settings = settings_for(vendor, server, llm_timeout_seconds=0.2, llm_max_retries=1)
    with pytest.raises(ProviderError, match="timed out after 2 attempts"):
        provider(vendor, settings, Sleeps()).generate(REQUEST)


@pytest.mark.parametrize("vendor", VENDORS)
def test_malformed_json_fails_the_request(vendor: str, server: FakeLLMServer) -> None:
    server.replies.append(Reply(body='{"content": [ truncated'))
    with pytest.raises(ProviderError, match="unreadable answer"):
        provider(vendor, settings_for(vendor, server), Sleeps()).generate(REQUEST)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_refused_key_makes_the_provider_unavailable(vendor: str, server: FakeLLMServer) -> None:
    server.replies.append(Reply(401, error_body(401, "invalid x-api-key")))
    with pytest.raises(ProviderUnavailable, match="HTTP 401: .*invalid x-api-key"):
        provider(vendor, settings_for(vendor, server), Sleeps()).generate(REQUEST)
    assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_missing_key_is_named(vendor: str) -> None:
    with pytest.raises(ProviderUnavailable, match=f"set {vendor.upper()}_API_KEY"):
        provider(vendor, Settings(**{f"{vendor}_api_key": ""}), Sleeps())


@pytest.mark.parametrize("vendor", VENDORS)
def test_complete_serves_the_llara_reranker(vendor: str, server: FakeLLMServer) -> None:
    server.replies.append(Reply(text="3"))
    assert provider(vendor, settings_for(vendor, server), Sleeps()).complete("which?") == "3"
    body = server.requests[0][2]
    assert "response_format" not in body and "system" not in body


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_run_retries_a_schema_invalid_graph_and_stores_the_valid_one(
    vendor: str,
    server: FakeLLMServer,
    mpd: Engine,
    tmp_path: Path,
) -> None:
    server.replies.extend(
        [Reply(text='{"nodes": [{"id": "x", "kind": "planet"}]}'), Reply(text=VALID)]
    )
    settings = settings_for(vendor, server, var_dir=tmp_path)
    report = generate_interest_graphs(mpd, settings, make_provider(vendor, settings), user_id=1)
    assert (report.done, report.failed, report.usage) == (1, 0, Usage(240, 60))
    retry = server.requests[1][2]["messages"]
    assert "nodes.0.kind" in retry[-1]["content"]  # the validation error, quoted
    with mpd.connect() as conn:
        row = conn.execute(select(UserInterestGraph.__table__)).mappings().one()
    assert (row["status"], row["provider"], row["model"]) == ("ok", vendor, "model-x")
