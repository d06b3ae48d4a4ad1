"""Signed one-click links: bound to client, appointment and action; expire; cannot be forged or re-pointed."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from channels.links import (ACTIONS, MAX_AGE, LinkExpired, LinkInvalid, make_link, make_token, read_link)
from reagenda.settings import load


@pytest.fixture
def settings(tmp_path):  # type: ignore[no-untyped-def]
    return load({"REAGENDA_VAR_DIR": str(tmp_path), "SECRET_KEY": "links-test-secret-0123456789",
                 "BASE_URL": "https://reagenda.example.com"})


def test_round_trip_for_every_action(settings):  # type: ignore[no-untyped-def]
    for action in ACTIONS:
        url = make_link(settings, action, client_id=7, appointment_id=42, extra={"k": "v"})
        assert url.startswith("https://reagenda.example.com/l/")
        payload = read_link(settings, url.rsplit("/", 1)[1])
        assert (payload.action, payload.client_id, payload.appointment_id) == (action, 7, 42)
        assert payload.extra == {"k": "v"}


def test_expires_per_action(settings):  # type: ignore[no-untyped-def]
    token = make_token(settings, "arrived", client_id=1, appointment_id=2)
    now = datetime.now(timezone.utc)
    assert read_link(settings, token, now=now + timedelta(seconds=MAX_AGE["arrived"] - 60)).action == "arrived"
    with pytest.raises(LinkExpired, match="expired"):
        read_link(settings, token, now=now + timedelta(seconds=MAX_AGE["arrived"] + 60))
    with pytest.raises(LinkExpired):
        read_link(settings, token, max_age=0, now=now + timedelta(seconds=2))


def test_tampered_payload_for_another_client_is_rejected(settings):  # type: ignore[no-untyped-def]
    token = make_token(settings, "cancel", client_id=1, appointment_id=2)
    body, ts, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"a": "cancel", "c": 2, "p": 2}).encode()).decode().rstrip("=")
    with pytest.raises(LinkInvalid, match="not valid"):
        read_link(settings, f"{forged}.{ts}.{sig}")
    with pytest.raises(LinkInvalid):
        read_link(settings, token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))


def test_signed_with_another_secret_is_rejected(settings, tmp_path):  # type: ignore[no-untyped-def]
    other = load({"REAGENDA_VAR_DIR": str(tmp_path), "SECRET_KEY": "another-secret-0123456789"})
    token = make_token(other, "confirm", client_id=1)
    with pytest.raises(LinkInvalid):
        read_link(settings, token)


def test_action_is_bound(settings):  # type: ignore[no-untyped-def]
    token = make_token(settings, "confirm", client_id=1, appointment_id=2)
    with pytest.raises(LinkInvalid, match="confirm"):
        read_link(settings, token, expect_action="cancel")


def test_unknown_action_is_a_programming_error(settings):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="unknown link action"):
        make_link(settings, "delete_everything", client_id=1)
