"""Abuse: forged and replayed webhooks, for every endpoint a provider calls.

Google channel notifications (wrong or missing X-Goog-Channel-Token, unknown channel, right token for another
channel), Graph notifications (wrong clientState, one forged note in a batch of good ones), the SendGrid Event
Webhook (no signature, a signature by another key, a tampered body, a genuine signature replayed an hour later) and
Inbound Parse (wrong or missing secret in the URL): each answers 4xx, and nothing is stored or queued: every
table's row count and the queue length are the same after the request as before it.
"""
from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from email.message import EmailMessage

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from store.crypto import encrypt_json
from store.models import Base, Calendar, CalendarConnection, PushChannel
from tests.factories import make_appointment, make_owner
from web import create_app

SECRET = "inbound-secret-for-abuse-tests-42"
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


def _keypair():  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(public).decode()


def _signed(key, body: bytes, ts: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {SIG: base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode(), TS: ts}


@pytest.fixture
def env(sqlite_stack, monkeypatch):  # type: ignore[no-untyped-def]
    stack = sqlite_stack
    key, public = _keypair()
    settings = dataclasses.replace(stack.settings, inbound_secret=SECRET, inbound_domain="in.reagenda.test",
                                   sendgrid_webhook_public_key=public, base_url="https://reagenda.test")
    monkeypatch.setattr(stack.ctx, "settings", settings)
    monkeypatch.setattr(stack, "settings", settings)
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=3))
        channels = {}
        for provider, channel_id in (("google", "g-chan-1"), ("google", "g-chan-2"), ("outlook", "sub-1")):
            conn = CalendarConnection(owner_id=owner.id, provider=provider, account="owner@example.com",
                                      credentials="", status="ok", status_detail="", created_at=now)
            s.add(conn)
            s.flush()
            cal = Calendar(connection_id=conn.id, external_id=f"cal-{channel_id}", name="Agenda", watched=True)
            s.add(cal)
            s.flush()
            s.add(PushChannel(calendar_id=cal.id, provider=provider, channel_id=channel_id,
                              resource_id=f"res-{channel_id}", secret=encrypt_json(settings, {"secret": f"tok-{channel_id}"}),
                              callback_url="", status="active", expires_at=now + timedelta(days=7), created_at=now))
    client = create_app(settings, context=stack.ctx).test_client()
    return stack, client, key


def _state(stack) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        counts = {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
        counts["push_notified"] = s.scalar(select(func.count()).select_from(PushChannel)
                                           .where(PushChannel.last_notified_at.is_not(None)))
    counts["queued_jobs"] = sum(stack.ctx.redis.llen(k) for k in stack.ctx.redis.scan_iter("rq:queue:*"))
    return counts


def _google(client, channel: str, token: str | None, resource: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"X-Goog-Channel-ID": channel, "X-Goog-Resource-State": "exists",
               "X-Goog-Resource-ID": resource or f"res-{channel}", "X-Goog-Message-Number": "2"}
    if token is not None:
        headers["X-Goog-Channel-Token"] = token
    return client.post("/push/google", headers=headers)


def _graph(client, notes):  # type: ignore[no-untyped-def]
    return client.post("/push/graph", json={"value": notes})


def _note(sub: str, state: str) -> dict[str, str]:
    return {"subscriptionId": sub, "clientState": state, "changeType": "updated", "resource": "me/events/1"}


def _raw_email() -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "marta@example.com", "citas@in.reagenda.test", "Re: Recordatorio"
    m.set_content("Confirmo")
    return bytes(m)


def _events_body() -> bytes:
    return json.dumps([{"email": "marta@example.com", "event": "spamreport", "sg_event_id": "ev-forged"}]).encode()


def _cases(stack, key):  # type: ignore[no-untyped-def]
    now_ts = str(int(stack.clock.now().timestamp()))
    hour_ago = str(int(stack.clock.now().timestamp()) - 3600)
    body = _events_body()
    other_key, _ = _keypair()
    parse = {"email": _raw_email().decode(), "envelope": json.dumps({"to": ["citas@in.reagenda.test"]})}
    return {
        "google: no token": lambda c: _google(c, "g-chan-1", None),
        "google: wrong token": lambda c: _google(c, "g-chan-1", "tok-guess"),
        "google: another channel's token": lambda c: _google(c, "g-chan-1", "tok-g-chan-2"),
        "google: unknown channel": lambda c: _google(c, "g-chan-404", "tok-g-chan-1"),
        "google: right token, wrong resource": lambda c: _google(c, "g-chan-1", "tok-g-chan-1", "res-other"),
        "graph: wrong clientState": lambda c: _graph(c, [_note("sub-1", "guess")]),
        "graph: one forged note in a batch": lambda c: _graph(c, [_note("sub-1", "tok-sub-1"), _note("sub-1", "x")]),
        "graph: unknown subscription": lambda c: _graph(c, [_note("sub-404", "tok-sub-1")]),
        "events: unsigned": lambda c: c.post(f"/inbound/{SECRET}/sendgrid/events", data=body,
                                             content_type="application/json"),
        "events: signed by another key": lambda c: c.post(f"/inbound/{SECRET}/sendgrid/events", data=body,
                                                          content_type="application/json",
                                                          headers=_signed(other_key, body, now_ts)),
        "events: tampered body": lambda c: c.post(f"/inbound/{SECRET}/sendgrid/events", data=body + b" ",
                                                  content_type="application/json",
                                                  headers=_signed(key, body, now_ts)),
        "events: replayed an hour later": lambda c: c.post(f"/inbound/{SECRET}/sendgrid/events", data=body,
                                                           content_type="application/json",
                                                           headers=_signed(key, body, hour_ago)),
        "events: wrong URL secret": lambda c: c.post("/inbound/guess/sendgrid/events", data=body,
                                                     content_type="application/json",
                                                     headers=_signed(key, body, now_ts)),
        "parse: wrong URL secret": lambda c: c.post("/inbound/guess/sendgrid/parse", data=parse,
                                                    content_type="multipart/form-data"),
        "parse: secret with a suffix": lambda c: c.post(f"/inbound/{SECRET}x/sendgrid/parse", data=parse,
                                                        content_type="multipart/form-data"),
        "parse: empty secret": lambda c: c.post("/inbound//sendgrid/parse", data=parse,
                                                content_type="multipart/form-data"),
    }


def test_forged_and_replayed_webhooks_are_refused_and_store_nothing(env):  # type: ignore[no-untyped-def]
    stack, client, key = env
    for name, send in _cases(stack, key).items():
        before = _state(stack)
        response = send(client)
        assert 400 <= response.status_code < 500, f"{name}: answered {response.status_code}"
        assert _state(stack) == before, f"{name}: something was stored or queued"


def test_the_genuine_requests_are_accepted(env):  # type: ignore[no-untyped-def]
    """The control: the same requests with the right credentials do get through (so the refusals mean something)."""
    stack, client, key = env
    assert _google(client, "g-chan-1", "tok-g-chan-1").status_code == 200
    assert _graph(client, [_note("sub-1", "tok-sub-1")]).status_code == 202
    body = _events_body()
    ts = str(int(stack.clock.now().timestamp()))
    ok = client.post(f"/inbound/{SECRET}/sendgrid/events", data=body, content_type="application/json",
                     headers=_signed(key, body, ts))
    assert ok.status_code == 200
    parse = {"email": _raw_email().decode(), "envelope": json.dumps({"to": ["citas@in.reagenda.test"]})}
    assert client.post(f"/inbound/{SECRET}/sendgrid/parse", data=parse,
                       content_type="multipart/form-data").status_code == 200
