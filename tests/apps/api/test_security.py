"""The admin token check and the per-key rate limiter (on an injected clock)."""

from __future__ import annotations

import threading

import pytest
from pydantic import SecretStr

from apps.api.security import RateLimiter, check_admin_token
from musicrec.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_admin_token_must_match_exactly() -> None:
    settings = Settings(admin_token=SecretStr("s3cret-tökén"))
    assert check_admin_token("s3cret-tökén", settings)
    for wrong in [None, "", "s3cret-töké", "s3cret-tökén ", "S3CRET-TÖKÉN", "s3cret-token"]:
        assert not check_admin_token(wrong, settings), wrong


def test_no_admin_token_configured_lets_nobody_in() -> None:
    for configured in [None, SecretStr("")]:
        settings = Settings(admin_token=configured)
        assert not check_admin_token("", settings)
        assert not check_admin_token(None, settings)
        assert not check_admin_token("anything", settings)


def test_burst_then_the_sustained_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)  # one token comes back every 0.5 s
    clock.now += 0.25
    assert limiter.acquire("a") == pytest.approx(0.25)  # refusals do not cost tokens
    clock.now += 0.25
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.5)

    allowed = 0
    for _ in range(40):  # 10 s at four attempts a second: 2 per second get through
        clock.now += 0.25
        allowed += limiter.acquire("a") == 0.0
    assert allowed == 20


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(1.0, 2, clock=Clock())
    assert [limiter.acquire("a") for _ in range(3)][-1] > 0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("b") > 0


def test_waiting_the_returned_time_is_enough() -> None:
    clock = Clock()
    limiter = RateLimiter(3.0, 1, clock=clock)
    assert limiter.acquire("k") == 0.0
    for _ in range(5):
        wait = limiter.acquire("k")
        assert wait > 0
        clock.now += wait
        assert limiter.acquire("k") == 0.0


def test_idle_buckets_are_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, clock=clock)  # an idle bucket is full again after 2 s
    limiter.acquire("a")
    limiter.acquire("b")
    clock.now += 1
    limiter.acquire("c")
    assert len(limiter) == 3
    clock.now += 1.5
    limiter.acquire("d")
    assert len(limiter) == 2  # a and b went; c (idle 1.5 s) stays
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0.0, 0.0]  # a full bucket again


def test_memory_is_bounded_under_a_flood_of_keys() -> None:
    limiter = RateLimiter(1.0, 1, max_keys=100, clock=Clock())
    for i in range(1000):
        limiter.acquire(f"ip:{i}")
    assert len(limiter) == 100
    assert limiter.acquire("ip:999") > 0  # the most recent keys are still counted
    assert limiter.acquire("ip:0") == 0.0  # the oldest were forgotten
    assert len(limiter) == 100


def test_concurrent_acquires_never_exceed_the_burst() -> None:
    limiter = RateLimiter(1.0, 100, clock=Clock())  # the clock stands still: no refill
    allowed: list[int] = []

    def take() -> None:
        allowed.append(sum(limiter.acquire("shared") == 0.0 for _ in range(50)))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100


def test_bad_limits_are_refused() -> None:
    for rate, burst in [(0.0, 1), (-1.0, 1), (1.0, 0)]:
        with pytest.raises(ValueError):
            RateLimiter(rate, burst)
