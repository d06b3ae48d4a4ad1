"""SMS and WhatsApp through the real ``twilio`` library against a local fake of the Messages API."""
from __future__ import annotations

import sys

import pytest

from channels.base import AddressRejected, ChannelNotConfigured, OutgoingMessage, TransientChannelError
from channels.registry import message_channel
from reagenda.settings import load
from tests.fakes.twilio import RunningTwilio

SID, TOKEN = "AC" + "1" * 32, "twilio-token-secret"


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    with RunningTwilio(SID, TOKEN) as fake:
        yield fake


def _settings(tmp_path, fake, **extra):  # type: ignore[no-untyped-def]
    env = {"REAGENDA_VAR_DIR": str(tmp_path), "SECRET_KEY": "twilio-test-secret-01234", "TWILIO_ACCOUNT_SID": SID,
           "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": "+34910000000", "TWILIO_WHATSAPP_FROM": "+34910000001",
           "TWILIO_HOST": fake.url}
    env.update(extra)
    return load({k: v for k, v in env.items() if v is not None})


def _msg(to="+34600111222", **kw):  # type: ignore[no-untyped-def]
    return OutgoingMessage(idempotency_key="k1", recipient=to, sender="", subject="Recordatorio",
                           text="Hola Marta, tu cita es mañana a las 10:00.", message_id=3, locale="es",
                           unsubscribe_url=kw.pop("unsubscribe_url", "https://r.test/l/abc"), **kw)


def test_sms_and_whatsapp(tmp_path, fake):  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, fake)
    assert message_channel(settings, "sms").send(_msg()).startswith("twilio:SM")
    assert message_channel(settings, "whatsapp").send(_msg()).startswith("twilio:SM")
    sms, wa = fake.sent
    assert (sms["to"], sms["from"]) == ("+34600111222", "+34910000000")
    assert (wa["to"], wa["from"]) == ("whatsapp:+34600111222", "whatsapp:+34910000001")
    assert sms["body"].endswith("Baja: https://r.test/l/abc")


def test_bad_number_and_stop_mark_the_address(tmp_path, fake):  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, fake)
    with pytest.raises(AddressRejected, match="21211") as info:
        message_channel(settings, "sms").send(_msg(to="600 11 12"))
    assert info.value.address == "600 11 12"
    fake.stopped.add("+34600999888")
    with pytest.raises(AddressRejected, match="21610"):
        message_channel(settings, "sms").send(_msg(to="+34600999888"))


def test_outage_is_transient_and_bad_credentials_not_configured(tmp_path, fake):  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, fake)
    fake.fail_next(503)
    with pytest.raises(TransientChannelError, match="503"):
        message_channel(settings, "sms").send(_msg())
    with pytest.raises(ChannelNotConfigured, match="TWILIO_AUTH_TOKEN") as info:
        message_channel(_settings(tmp_path, fake, TWILIO_AUTH_TOKEN="wrong-token"), "sms").send(_msg())
    assert "wrong-token" not in str(info.value)
    unreachable = _settings(tmp_path, fake, TWILIO_HOST="http://127.0.0.1:9")
    with pytest.raises(TransientChannelError, match="could not be reached"):
        message_channel(unreachable, "sms").send(_msg())


def test_selected_but_not_configured_or_not_installed(tmp_path, fake, monkeypatch):  # type: ignore
    with pytest.raises(ChannelNotConfigured, match="TWILIO_WHATSAPP_FROM is not set"):
        message_channel(_settings(tmp_path, fake, TWILIO_WHATSAPP_FROM=None), "whatsapp")
    monkeypatch.setitem(sys.modules, "twilio", None)
    with pytest.raises(ChannelNotConfigured, match="pip install"):
        message_channel(_settings(tmp_path, fake), "sms")
