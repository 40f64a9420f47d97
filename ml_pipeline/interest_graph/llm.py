"""The language-model providers: Anthropic (Messages API) and OpenAI (Chat Completions), through
their official SDKs.

The SDKs' own retries are turned off so that one policy, here, applies to both and is logged:
429, 408, 5xx (Anthropic's 529 "overloaded" included), connection errors and timeouts are
retried with exponential backoff and jitter, honouring a Retry-After header; a refused key or an
unknown model (401, 403, 404) makes the provider unavailable for the whole run; anything else
fails the one request with a one-line reason.
"""

from __future__ import annotations

import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from ml_pipeline.interest_graph.providers import (
    Completion,
    GraphRequest,
    Message,
    ProviderError,
    ProviderUnavailable,
    Usage,
)
from musicrec.config import Settings

log = logging.getLogger(__name__)
RETRIED_STATUS = {408, 429}
FATAL_STATUS = {401, 403, 404}


class LanguageModelProvider(ABC):
    """What both vendors share: the key check, the client, the retry loop and the text API
    (`complete`) of the LLaRA re-ranker. Subclasses make the client and the one call."""

    name: str
    key_variable: str

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
        key = self._key(settings)
        if key is None or not key.get_secret_value():
            raise ProviderUnavailable(f"set {self.key_variable} to use the {self.name} provider")
        self.model = self._model(settings)
        self.max_tokens = settings.llm_max_output_tokens
        self.retries = settings.llm_max_retries
        self.backoff = settings.llm_backoff_seconds
        self.max_backoff = settings.llm_max_backoff_seconds
        self.sleep = sleep
        self.client = self._client(key.get_secret_value(), settings)

    def generate(self, request: GraphRequest) -> Completion:
        return self._retried(lambda: self._call(request.system, request.messages, json=True))

    def complete(self, prompt: str) -> str:
        return self._retried(lambda: self._call(None, [Message("user", prompt)], json=False)).text

    def _retried(self, call: Callable[[], Completion]) -> Completion:
        errors = self._sdk_errors()
        for attempt in range(1, self.retries + 2):
            try:
                completion = call()
            except errors.APITimeoutError:
                reason, wait = "timed out", None
            except errors.APIConnectionError as exc:
                reason, wait = f"connection failed ({exc})", None
            except errors.APIStatusError as exc:
                status = exc.status_code
                message = _one_line(getattr(exc, "message", "") or str(exc))
                if status in FATAL_STATUS:
                    raise ProviderUnavailable(f"HTTP {status}: {message}") from None
                if status not in RETRIED_STATUS and status < 500:
                    raise ProviderError(f"HTTP {status}: {message}") from None
                reason, wait = f"HTTP {status}: {message}", _retry_after(exc.response.headers)
            except (errors.APIError, ValueError) as exc:  # a body that is not the API's shape
                raise ProviderError(f"unreadable answer: {_one_line(str(exc))}") from None
            else:
                if not completion.text.strip():
                    raise ProviderError("empty answer")
                log.debug(
                    "%s %s: %d tokens in, %d out",
                    self.name,
                    self.model,
                    completion.usage.input_tokens,
                    completion.usage.output_tokens,
                )
                return completion
            if attempt > self.retries:
                raise ProviderError(f"{reason} after {attempt} attempts")
            delay = self._delay(attempt, wait)
            log.warning("%s: %s; retry %d in %.1f s", self.name, reason, attempt, delay)
            self.sleep(delay)
        raise AssertionError("the loop returns or raises")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # equal jitter: spread clients apart

    # --- per vendor ----------------------------------------------------------------------------

    @abstractmethod
    def _key(self, settings: Settings) -> Any: ...

    @abstractmethod
    def _model(self, settings: Settings) -> str: ...

    @abstractmethod
    def _client(self, key: str, settings: Settings) -> Any: ...

    @abstractmethod
    def _sdk_errors(self) -> Any:
        """The SDK module: both name their exceptions alike (APIStatusError, ...)."""

    @abstractmethod
    def _call(self, system: str | None, messages: Sequence[Message], json: bool) -> Completion: ...


class AnthropicProvider(LanguageModelProvider):
    name, key_variable = "anthropic", "ANTHROPIC_API_KEY"

    def _key(self, settings: Settings) -> Any:
        return settings.anthropic_api_key

    def _model(self, settings: Settings) -> str:
        return settings.anthropic_model

    def _client(self, key: str, settings: Settings) -> Any:
        import anthropic

        return anthropic.Anthropic(
            api_key=key,
            base_url=settings.anthropic_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
        )

    def _sdk_errors(self) -> Any:
        import anthropic

        return anthropic

    def _call(self, system: str | None, messages: Sequence[Message], json: bool) -> Completion:
        extra = {"system": system} if system else {}
        response = self.client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            **extra,
        )
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = Usage(response.usage.input_tokens, response.usage.output_tokens)
        return Completion(text, usage)


class OpenAIProvider(LanguageModelProvider):
    name, key_variable = "openai", "OPENAI_API_KEY"

    def _key(self, settings: Settings) -> Any:
        return settings.openai_api_key

    def _model(self, settings: Settings) -> str:
        return settings.openai_model

    def _client(self, key: str, settings: Settings) -> Any:
        import openai

        return openai.OpenAI(
            api_key=key,
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
        )

    def _sdk_errors(self) -> Any:
        import openai

        return openai

    def _call(self, system: str | None, messages: Sequence[Message], json: bool) -> Completion:
        chat = [{"role": "system", "content": system}] if system else []
        chat += [{"role": m.role, "content": m.content} for m in messages]
        extra: dict[str, Any] = {"response_format": {"type": "json_object"}} if json else {}
        response = self.client.chat.completions.create(
            model=self.model, messages=chat, max_completion_tokens=self.max_tokens, **extra
        )
        text = response.choices[0].message.content or "" if response.choices else ""
        usage = response.usage
        return Completion(
            text, Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage()
        )


def _retry_after(headers: Any) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
