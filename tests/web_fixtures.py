"""Fixtures and helpers for the web tests: the real app on a ``stack`` (both backends), and a signed-in client.

Imported by ``tests/test_web_*.py`` (``from tests.web_fixtures import ...``) rather than living in the shared
conftest, so the web area's helpers stay with the web tests.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from web import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def csrf_from(html: str) -> str:
    m = CSRF.search(html)
    assert m, "page has no CSRF field"
    return m.group(1)


def post_form(client: FlaskClient, page: str, url: str | None = None, **data: Any):  # type: ignore[no-untyped-def]
    """GET ``page``, take its CSRF token, POST ``data`` to ``url`` (default: the same page)."""
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url or page, data={"csrf_token": token, **data})


def sign_up(client: FlaskClient, email: str, *, locale: str = "en", business: str = "Estudio Lumen"):  # type: ignore[no-untyped-def]
    r = post_form(client, "/signup", email=email, password=PASSWORD, business_name=business,
                  timezone="Europe/Madrid", locale=locale)
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return r


@pytest.fixture
def web_app(stack) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    app = create_app(stack.settings, context=stack.ctx)
    app.config.update(TESTING=True)
    yield app


@pytest.fixture
def web_client(web_app: Flask) -> FlaskClient:
    client = web_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # the tests read English; Spanish has its own tests
    return client
