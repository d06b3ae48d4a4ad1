"""SendGrid through the real ``sendgrid`` library against a local fake of the v3 API."""
from __future__ import annotations

import pytest

from channels.base import (Attachment, ChannelNotConfigured, OutgoingMessage, PermanentChannelError,
                           TransientChannelError)
from channels.registry import email_channel
from channels.threads import find_message_ids
from reagenda.settings import load
from tests.fakes.sendgrid import RunningFake


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    with RunningFake() as fake:
        yield fake


def _settings(tmp_path, fake, **extra):  # type: ignore[no-untyped-def]
    env = {"REAGENDA_VAR_DIR": str(tmp_path), "SECRET_KEY": "sendgrid-test-secret-0123", "EMAIL_BACKEND": "sendgrid",
           "SENDGRID_API_KEY": "SG.test-key", "SENDGRID_HOST": fake.url, "INBOUND_DOMAIN": "in.reagenda.test",
           "BASE_URL": "https://reagenda.test", "EMAIL_FROM": "Estudio Lumen <citas@lumen.test>"}
    env.update(extra)
    return load(env)


def _msg(**kw):  # type: ignore[no-untyped-def]
    base = dict(idempotency_key="a1-reminder_48h", recipient="Marta <marta@example.com>",
                sender="Estudio Lumen <citas@lumen.test>", subject="Recordatorio", text="Hola Marta\n\nTu cita.",
                message_id=42, kind="reminder", locale="es")
    base.update(kw)
    return OutgoingMessage(**base)


def test_sends_a_well_formed_message(tmp_path, fake):  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, fake)
    ics = Attachment("cita.ics", "text/calendar; method=REQUEST", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    provider_id = email_channel(settings).send(_msg(attachments=(ics,)))
    assert provider_id.startswith("sendgrid:") and len(provider_id) > len("sendgrid:")
    [body] = fake.sent
    assert body["personalizations"][0]["to"] == [{"email": "marta@example.com", "name": "Marta"}]
    assert body["personalizations"][0]["custom_args"]["reagenda_message_id"] == "42"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert "Darse de baja" in body["content"][1]["value"]
    reply_to = body["reply_to"]["email"]
    assert reply_to.startswith("reply+m42-") and reply_to.endswith("@in.reagenda.test")
    assert find_message_ids(settings, reply_to) == [42]
    assert find_message_ids(settings, body["headers"]["Message-ID"]) == [42]
    assert body["headers"]["List-Unsubscribe"].startswith("<https://reagenda.test/l/u/m42-")
    assert "mailto:reply+m42-" in body["headers"]["List-Unsubscribe"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "reminder" in body["categories"]
    assert body["attachments"][0]["filename"] == "cita.ics"


def test_outage_is_transient(tmp_path, fake):  # type: ignore[no-untyped-def]
    fake.fail_next(503)
    with pytest.raises(TransientChannelError, match="HTTP 503"):
        email_channel(_settings(tmp_path, fake)).send(_msg())
    fake.fail_next(429)
    with pytest.raises(TransientChannelError, match="HTTP 429"):
        email_channel(_settings(tmp_path, fake)).send(_msg())
    assert fake.sent == []


def test_unreachable_is_transient(tmp_path, fake):  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, fake, SENDGRID_HOST="http://127.0.0.1:9")
    with pytest.raises(TransientChannelError, match="could not be reached"):
        email_channel(settings).send(_msg())


def test_bad_address_is_permanent_and_names_the_address(tmp_path, fake):  # type: ignore[no-untyped-def]
    fake.reject.add("nobody@example.com")
    with pytest.raises(PermanentChannelError, match="nobody@example.com"):
        email_channel(_settings(tmp_path, fake)).send(_msg(recipient="nobody@example.com"))


def test_bad_key_is_not_configured_and_never_leaks_the_key(tmp_path, fake):  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, fake, SENDGRID_API_KEY="wrong-key-123")
    with pytest.raises(ChannelNotConfigured) as info:
        email_channel(settings).send(_msg())
    assert "wrong-key-123" not in str(info.value)
