"""Abuse: one-click links tampered with, truncated, expired, signed with another key, or bound to another
client's appointment: rejected with a friendly page in the client's language (4xx, no traceback), and nothing
recorded. A genuine link is accepted, as the control."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from channels.links import MAX_AGE, make_token
from store.models import Appointment, Reply
from tests.factories import make_appointment, make_owner
from web import create_app


@pytest.fixture
def env(sqlite_stack):  # type: ignore[no-untyped-def]
    stack = sqlite_stack
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        mine = make_appointment(s, owner, now, now + timedelta(days=3), client_email="marta@example.com", uid="m1")
        theirs = make_appointment(s, owner, now, now + timedelta(days=4), client_email="luis@example.com", uid="l1")
        ids = {"client": mine.client_id, "appt": mine.id, "other_appt": theirs.id, "other_client": theirs.client_id}
    client = create_app(stack.settings, context=stack.ctx).test_client()
    return stack, client, ids


def _recorded(stack) -> tuple:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return (s.scalar(select(func.count()).select_from(Reply)),
                tuple(s.scalars(select(Appointment.confirmation).order_by(Appointment.id))),
                tuple(s.scalars(select(Appointment.status).order_by(Appointment.id))))


def _flip(token: str, at: int) -> str:
    ch = token[at]
    return token[:at] + ("A" if ch != "A" else "B") + token[at + 1:]


def _assert_friendly(response, *, status: int) -> None:  # type: ignore[no-untyped-def]
    body = response.get_data(as_text=True)
    assert response.status_code == status, (response.status_code, body[:300])
    assert response.mimetype == "text/html"
    assert "<html" in body and "Traceback" not in body
    assert any(p in body for p in ("no es válido", "ha caducado", "not valid", "has expired")), body[:500]


def test_tampered_truncated_foreign_and_expired_links_get_a_friendly_refusal(env):  # type: ignore[no-untyped-def]
    stack, client, ids = env
    settings = stack.settings
    good = make_token(settings, "confirm", client_id=ids["client"], appointment_id=ids["appt"])
    other_key = dataclasses.replace(settings, secret_key="another-secret-key-entirely-0123456789")
    forged = {
        "payload byte changed": _flip(good, 3),
        "signature byte changed": _flip(good, len(good) - 3),
        "truncated": good[:-6],
        "garbage": "not-a-token",
        "signed with another key": make_token(other_key, "confirm", client_id=ids["other_client"],
                                              appointment_id=ids["other_appt"]),
        "another client's appointment": make_token(settings, "confirm", client_id=ids["client"],
                                                   appointment_id=ids["other_appt"]),
        "unknown client": make_token(settings, "confirm", client_id=999_999),
    }
    before = _recorded(stack)
    for name, token in forged.items():
        for method in ("get", "post"):
            response = getattr(client, method)(f"/l/{token}", data={"key": "x"} if method == "post" else None)
            assert response.status_code in (400, 404), f"{name} ({method}): {response.status_code}"
            _assert_friendly(response, status=response.status_code)
    assert _recorded(stack) == before

    # The right link, but its form posted with a key that does not belong to it.
    r = client.post(f"/l/{good}", data={"key": "guess"})
    _assert_friendly(r, status=400)
    assert _recorded(stack) == before

    # Spanish for a Spanish client, English when the browser and the client say so.
    assert "no es válido" in client.get(f"/l/{forged['truncated']}",
                                        headers={"Accept-Language": "es"}).get_data(as_text=True)

    # Tokens carry the wall-clock signing time; the link page reads the (frozen) runtime clock.
    stack.clock.set(datetime.now(timezone.utc) + timedelta(seconds=MAX_AGE["confirm"] + 60))
    expired = client.get(f"/l/{good}")
    _assert_friendly(expired, status=410)
    assert client.post(f"/l/{good}", data={"key": "x"}).status_code == 410
    assert _recorded(stack) == before


def test_the_genuine_link_works(env):  # type: ignore[no-untyped-def]
    stack, client, ids = env
    token = make_token(stack.settings, "confirm", client_id=ids["client"], appointment_id=ids["appt"])
    page = client.get(f"/l/{token}")
    assert page.status_code == 200
    import re

    key = re.search(r'name="key" value="([^"]+)"', page.get_data(as_text=True))
    assert key, "the confirm page has its form key"
    assert client.post(f"/l/{token}", data={"key": key.group(1)}).status_code == 200
    with stack.session() as s:
        assert s.get(Appointment, ids["appt"]).confirmation == "confirmed"
