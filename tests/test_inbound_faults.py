"""Bad input at the webhooks: a 4xx, exactly one log line, nothing stored. And the Event Webhook, signed."""
from __future__ import annotations

import base64
import io
import dataclasses
import json
import logging
from datetime import timedelta
from email.message import EmailMessage

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from store.models import Client, InboundEvent, Reply, Step
from tests.factories import make_appointment, make_owner
from web import create_app

SECRET = "inbound-secret-for-tests-0123"


@pytest.fixture
def keypair():  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(public).decode()


@pytest.fixture
def env(sqlite_stack, keypair, monkeypatch):  # type: ignore[no-untyped-def]
    stack = sqlite_stack
    settings = dataclasses.replace(stack.settings, inbound_secret=SECRET, inbound_domain="in.reagenda.test",
                                   inbound_max_bytes=5 * 1024 * 1024, sendgrid_webhook_public_key=keypair[1])
    monkeypatch.setattr(stack.ctx, "settings", settings)
    monkeypatch.setattr(stack, "settings", settings)
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=3))
    app = create_app(settings, context=stack.ctx)
    return stack, app.test_client()


def _stored(stack) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return (s.scalar(select(func.count()).select_from(InboundEvent)),
                s.scalar(select(func.count()).select_from(Reply)))


def _raw(text: str = "Confirmo", charset: str = "utf-8") -> bytes:
    m = EmailMessage()
    m["From"] = "marta@example.com"
    m["To"] = "citas@lumen.test"
    m["Subject"] = "Re: Recordatorio"
    m["Message-ID"] = "<x1@mail.test>"
    m.set_content(text)
    return bytes(m)


BROKEN_MIME = (b"From: marta@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/alternative\r\n\r\n--nothing\r\nhello\r\n")
BAD_CHARSET = (b"From: marta@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: text/plain; charset=klingon-8\r\n\r\nConfirmo\r\n")


def _post(client, path, **kw):  # type: ignore[no-untyped-def]
    return client.post(path, **kw)


def _multipart(fields: dict[str, bytes]) -> tuple[io.BytesIO, str, int]:
    """A multipart/form-data body built by hand (bytes exactly as given, no re-encoding)."""
    boundary = "xYzZY"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value
                    + b"\r\n" for name, value in fields.items()) + f"--{boundary}--\r\n".encode()
    return io.BytesIO(body), f"multipart/form-data; boundary={boundary}", len(body)


def _post_multipart(client, path, fields):  # type: ignore[no-untyped-def]
    stream, ctype, length = _multipart(fields)
    return client.post(path, input_stream=stream, content_type=ctype, content_length=length)


CASES = {
    "wrong secret": (404, lambda c: _post(c, "/inbound/not-the-secret-at-all/sendgrid/parse",
                                          data={"email": _raw().decode()}, content_type="multipart/form-data")),
    "wrong content type": (415, lambda c: _post(c, f"/inbound/{SECRET}/sendgrid/parse", data="email=x",
                                                content_type="application/x-www-form-urlencoded")),
    "malformed multipart": (400, lambda c: _post(c, f"/inbound/{SECRET}/sendgrid/parse", data=b"--zz\r\ngarbage",
                                                 content_type="multipart/form-data; boundary=zz")),
    "broken MIME": (400, lambda c: _post(c, f"/inbound/{SECRET}/sendgrid/parse",
                                         data={"email": BROKEN_MIME.decode()}, content_type="multipart/form-data")),
    "unknown charset": (400, lambda c: _post(c, f"/inbound/{SECRET}/sendgrid/parse",
                                             data={"email": BAD_CHARSET.decode()},
                                             content_type="multipart/form-data")),
    # Latin-1 bytes posted while the charsets field says UTF-8.
    "wrong charset bytes": (400, lambda c: _post_multipart(c, f"/inbound/{SECRET}/sendgrid/parse",
                                                           {"headers": b"From: marta@example.com\nSubject: x\n",
                                                            "text": "Sí, allí estaré".encode("latin-1"),
                                                            "charsets": b'{"text": "utf-8"}'})),
    "30 MB body": (413, lambda c: _post_multipart(c, f"/inbound/{SECRET}/sendgrid/parse",
                                                  {"email": b"x" * (30 * 1024 * 1024)})),
    "forged event signature": (401, lambda c: _post(c, f"/inbound/{SECRET}/sendgrid/events",
                                                    data=b'[{"event":"bounce","email":"marta@example.com"}]',
                                                    content_type="application/json",
                                                    headers={"X-Twilio-Email-Event-Webhook-Signature":
                                                             base64.b64encode(b"forged").decode(),
                                                             "X-Twilio-Email-Event-Webhook-Timestamp": "1772442000"})),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_4xx_one_log_line_and_nothing_stored(env, case, caplog):  # type: ignore[no-untyped-def]
    stack, client = env
    status, call = CASES[case]
    with caplog.at_level(logging.INFO, logger="web.inbound"):
        response = call(client)
    assert response.status_code == status, response.get_data(as_text=True)
    lines = [r for r in caplog.records if r.name == "web.inbound"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert SECRET not in lines[0].getMessage()
    assert _stored(stack) == (0, 0)


def test_a_good_raw_email_after_the_bad_ones_still_works(env):  # type: ignore[no-untyped-def]
    stack, client = env
    response = client.post(f"/inbound/{SECRET}/sendgrid/parse", data={"email": _raw().decode()},
                           content_type="multipart/form-data")
    assert response.status_code == 200 and response.get_json()["status"] == "reply"
    assert _stored(stack) == (1, 1)


def _signed(key, body: bytes, ts: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    signature = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


def test_signed_bounce_marks_the_address_stops_sequences_tells_the_owner_once(env, keypair):  # type: ignore
    stack, client = env
    key, _ = keypair
    body = json.dumps([{"email": "marta@example.com", "event": "bounce", "type": "bounce",
                        "reason": "550 5.1.1 user unknown", "sg_event_id": "ev-1", "timestamp": 1772442000},
                       {"email": "marta@example.com", "event": "delivered", "sg_event_id": "ev-0"}]).encode()
    ts = str(int(stack.clock.now().timestamp()))
    for _ in range(2):  # delivered twice: processed once
        response = client.post(f"/inbound/{SECRET}/sendgrid/events", data=body, content_type="application/json",
                               headers=_signed(key, body, ts))
        assert response.status_code == 200
    with stack.session() as s:
        marta = s.scalar(select(Client).where(Client.email == "marta@example.com"))
        assert marta.email_status == "bounced" and "email" in marta.opted_out
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 1
        assert s.scalar(select(func.count()).select_from(Step).where(Step.kind == "owner_handoff")) == 1
        chasing = s.scalars(select(Step).where(Step.state == "pending", Step.subject_type == "appointment")).all()
        assert all(st.kind.startswith("reminder_") for st in chasing)


def test_a_replayed_event_post_is_refused(env, keypair):  # type: ignore[no-untyped-def]
    stack, client = env
    key, _ = keypair
    body = b'[{"email":"marta@example.com","event":"spamreport","sg_event_id":"ev-9"}]'
    old = str(int(stack.clock.now().timestamp()) - 3600)
    response = client.post(f"/inbound/{SECRET}/sendgrid/events", data=body, content_type="application/json",
                           headers=_signed(key, body, old))
    assert response.status_code == 401
    assert _stored(stack) == (0, 0)


def test_latin1_mail_is_read_in_both_modes(env):  # type: ignore[no-untyped-def]
    """Outlook in Spain often sends windows-1252/ISO-8859-1: parsed mode posts the fields in that charset (named
    in ``charsets``), raw mode posts 8-bit bytes. Both must be read exactly, not rejected or mangled."""
    stack, client = env
    parsed = _post_multipart(client, f"/inbound/{SECRET}/sendgrid/parse", {
        "headers": b"From: marta@example.com\nTo: citas@lumen.test\nSubject: Re: cita\nMessage-ID: <p1@x>\n",
        "text": "Sí, allí estaré. ¡Gracias!".encode("iso-8859-1"),
        "charsets": b'{"text": "iso-8859-1", "subject": "UTF-8", "from": "UTF-8"}'})
    assert parsed.status_code == 200, parsed.get_data(as_text=True)
    raw = (b"From: marta@example.com\r\nTo: citas@lumen.test\r\nSubject: Re: cita\r\nMessage-ID: <r1@x>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=windows-1252\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "No podré ir, lo siento".encode("cp1252") + b"\r\n")
    raw_mode = _post_multipart(client, f"/inbound/{SECRET}/sendgrid/parse", {"email": raw})
    assert raw_mode.status_code == 200, raw_mode.get_data(as_text=True)
    with stack.session() as s:
        texts = [(r.intent, r.text) for r in s.scalars(select(Reply).order_by(Reply.id))]
    assert texts == [("confirm", "Sí, allí estaré. ¡Gracias!"), ("cancel", "No podré ir, lo siento")]
