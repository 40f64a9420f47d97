"""The web page (/app) in headless Chromium against a served app with the small trained model:
search, pick seeds, get recommendations with scores and reasons, skip one and see the list
change through the real feedback path, a known listener, the operations view, and errors
shown as messages. Screenshots (desktop and 390x844) go to test-artifacts/webapp/ and, when
set, WEBAPP_SCREENSHOT_DIR.

Debian's chromium drives the tests (Playwright's own browser download does not work here):
`apt-get install chromium chromium-driver`. Without it the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select

from apps.api.main import create_app
from apps.api.security import SCOPES, ApiKeys
from apps.ml.main import create_app as create_ml_app
from apps.ml.service import MLService
from apps.serving import serve_in_background
from musicrec.config import REPO_ROOT
from musicrec.db.models import ListeningEvent, Track, User
from tests.apps.serving_env import APP, ServingEnv

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "webapp"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile (user data dir) per test."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(params=["embedded", "services"])
def served(
    request: pytest.FixtureRequest, make_env: Callable[..., ServingEnv]
) -> Iterator[tuple[str, str, ServingEnv]]:
    """(base URL, API key, env) of the API serving the test setup over HTTP; in services mode
    (Postgres, Redis) with the ML service as its own server, called over HTTP."""
    env = make_env(request.param)
    key = ApiKeys(env.engine, 0).create("webapp", app=APP, scopes=SCOPES)
    with ExitStack() as stack:
        settings = env.settings
        if request.param == "services":
            ml_app = create_ml_app(MLService(env.settings, env.engine))
            ml = stack.enter_context(serve_in_background(ml_app))
            settings = settings.model_copy(update={"ml_service_url": ml.url})
        server = stack.enter_context(serve_in_background(create_app(settings)))
        yield server.url, key, env


def screenshot(page: Page, name: str) -> None:
    folders = [ARTIFACTS]
    if extra := os.environ.get("WEBAPP_SCREENSHOT_DIR"):
        folders.append(Path(extra))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def rec_uris(page: Page) -> list[str]:
    return page.locator("#recs li").evaluate_all("items => items.map(i => i.dataset.trackUri)")


def events_of(env: ServingEnv, user: str) -> list[tuple[str, str]]:
    """The stored events of the page's listener `user` (stored as the key's app's)."""
    query = (
        select(ListeningEvent.event_type, Track.spotify_uri)
        .join(User, User.id == ListeningEvent.user_id)
        .join(Track, Track.id == ListeningEvent.track_id)
        .where(User.external_id == env.stored(user))
    )
    with env.engine.connect() as conn:
        return [(kind, uri) for kind, uri in conn.execute(query)]


def add_seed(page: Page, query: str, label: str) -> None:
    search = page.get_by_label("Search the catalog")
    search.fill(query)
    search.press("Enter")  # the keyboard: the form submits on Enter
    button = page.get_by_role("button", name=label)
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#seeds")).to_contain_text(label.removeprefix("Add ").split(" by ")[0])


@pytest.mark.timeout(180)
def test_seeds_recommendations_feedback_and_operations(
    browser: BrowserContext, served: tuple[str, str, ServingEnv]
) -> None:
    url, key, env = served
    mode = "embedded" if env.settings.database_backend == "sqlite" else "services"
    page = browser.new_page()
    page.goto(f"{url}/app#key={key}")
    expect(page.locator("#key-state")).to_contain_text("Using key mr_")
    assert "key=" not in page.url  # the fragment is dropped once the key is kept

    add_seed(page, "baby love", "Add Baby Love by Katy Perry as a seed")
    add_seed(page, "kiss me", "Add Kiss Me Tonight by Katy Perry as a seed")
    page.get_by_role("button", name="Get recommendations").click()
    recs = page.locator("#recs li")
    expect(recs).to_have_count(10)
    expect(page.locator("#recs-meta")).to_contain_text("source model")
    expect(recs.first).to_contain_text(re.compile(r"because you played .+ · score -?\d+\.\d{3}"))
    listener = page.locator("#session-id").inner_text()
    assert listener.startswith("web-")
    expect(page.locator("#status")).to_contain_text("recorded as clicks")
    before = rec_uris(page)
    screenshot(page, f"{mode}-desktop-recommendations")

    # Skip the first one: the event goes through POST /v1/feedback and the list changes.
    first = recs.first.locator(".title").inner_text()
    recs.first.get_by_role("button", name=re.compile("^Skip ")).click()
    expect(page.locator("#status")).to_contain_text("no longer offered", timeout=30_000)
    after = rec_uris(page)
    assert before[0] not in after and after != before, (before, after)
    assert len(after) == 10 and first
    assert ("skip", before[0]) in events_of(env, listener)
    assert {("click", "spotify:track:t17"), ("click", "spotify:track:t19")} <= set(
        events_of(env, listener)
    )  # the two seeds: Baby Love and Kiss Me Tonight by Katy Perry
    expect(page.locator("#recs .tag.new")).not_to_have_count(0)
    screenshot(page, f"{mode}-desktop-after-skip")
    page.set_viewport_size(PHONE)
    screenshot(page, f"{mode}-phone-recommendations")
    page.set_viewport_size(DESKTOP)

    # A known listener, by the keyboard.
    page.get_by_label("A known listener").check()
    page.get_by_label("Listener id").fill("u0")
    page.get_by_label("Listener id").press("Enter")
    expect(page.locator("#recs-meta")).to_contain_text("for listener u0 · source model")
    played = set(env.history("u0"))
    assert not played & set(rec_uris(page))

    # The operations view, reached with the keyboard (arrow keys move between the tabs).
    page.get_by_role("tab", name="Try it").focus()
    page.keyboard.press("ArrowRight")
    ops = page.locator("#panel-ops")
    expect(ops).to_be_visible()
    expect(page.locator("#models")).to_contain_text("hybrid@")
    expect(page.locator("#models")).to_contain_text("ndcg@10")
    serving = page.locator("#serving tbody tr", has_text="recommendations")
    expect(serving).to_contain_text(re.compile(r"user_id.*\d+\.\d"))
    expect(page.locator("#serving")).to_contain_text("Fallback rate")
    expect(page.locator("#features")).to_contain_text("Batch features up to")
    expect(page.locator("#features")).to_contain_text("2026-11-20 12:00:00 UTC")
    expect(page.locator("#curves svg.chart polyline")).not_to_have_count(0)
    screenshot(page, f"{mode}-desktop-operations")
    page.set_viewport_size(PHONE)
    screenshot(page, f"{mode}-phone-operations")


@pytest.mark.timeout(120)
def test_errors_are_messages_not_blank_panels(
    browser: BrowserContext, make_env: Callable[..., ServingEnv]
) -> None:
    env = make_env("embedded")
    with serve_in_background(create_app(env.settings)) as server:
        page = browser.new_page()
        page.goto(f"{server.url}/app")
        expect(page.locator("#key-state")).to_contain_text("No key yet")
        page.get_by_label("Search the catalog").fill("baby")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator("#search-message")).to_contain_text("An API key is needed")

        page.get_by_label("API key").fill("mr_not-a-real-key")
        page.get_by_role("button", name="Use key").click()
        page.get_by_role("button", name="Search", exact=True).click()
        message = page.locator("#search-message")
        expect(message).to_contain_text("401: missing or invalid API key")
        expect(message).to_have_attribute("role", "alert")
        page.get_by_role("tab", name="Operations").click()
        expect(page.locator("#ops-message")).to_contain_text("Operations view not loaded — 401")
        expect(page.locator("#models")).to_contain_text("Not available")
        screenshot(page, "error-wrong-key")

        server.stop()  # the API gone: a network error, said so
        page.get_by_role("tab", name="Try it").click()
        page.get_by_role("button", name="Search", exact=True).click()
        expect(message).to_contain_text("Network error")
