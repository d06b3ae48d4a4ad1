"""Browser tests: Playwright driving Debian's Chromium (``apt-get install chromium``; never ``playwright install``)
against the real app served by werkzeug on port 0 in a thread, on SQLite + the embedded Redis with a frozen clock,
and a real Radicale for the calendar. Screenshots of the main pages go to ``var/screenshots/`` (CI keeps them).

The tests of one module are a story (sign up → connect → see → act), so they share one server and one browser
context per module and run in order.
"""
from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

from reagenda import runtime

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


class LiveServer:
    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture(scope="session")
def chromium():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is missing; pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedded_redis) -> Iterator[tuple[object, LiveServer]]:  # type: ignore[no-untyped-def]
    """(stack, server): SQLite + embedded Redis + frozen clock, the app on a free port, BASE_URL pointing at it."""
    from tests.conftest import _make_stack
    from web import create_app

    tmp = tmp_path_factory.mktemp("browser")
    stack = _make_stack("sqlite", tmp, f"sqlite:///{tmp / 'reagenda.db'}", embedded_redis.url)
    runtime.install(stack.ctx)
    app = create_app(stack.settings, context=stack.ctx)
    with LiveServer(app) as server:
        settings = dataclasses.replace(stack.settings, base_url=server.url)
        stack.ctx.settings = settings
        stack.settings = settings
        yield stack, server
    runtime.install(None)
    stack.ctx.close()


@pytest.fixture(scope="module")
def page(chromium, live):  # type: ignore[no-untyped-def]
    context = chromium.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.csp_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()


def shoot(page, name: str, *, full: bool = True) -> Path:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path


__all__ = ["shoot", "LiveServer", "shutil"]
