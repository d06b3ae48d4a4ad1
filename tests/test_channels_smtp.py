"""SMTP against a local aiosmtpd server: the message as received, and failures mapped to retry or not."""
from __future__ import annotations

import email
import socket
import ssl
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from channels.base import OutgoingMessage, PermanentChannelError, TransientChannelError
from channels.registry import email_channel
from channels.threads import find_message_ids
from reagenda.settings import load


class Recorder:
    def __init__(self) -> None:
        self.received: list[Envelope] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
        if address.startswith("busy@"):
            return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtpd():  # type: ignore[no-untyped-def]
    handler = Recorder()
    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0: take a free port first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def _settings(tmp_path, url):  # type: ignore[no-untyped-def]
    return load({"REAGENDA_VAR_DIR": str(tmp_path), "SECRET_KEY": "smtp-test-secret-0123456", "EMAIL_BACKEND": "smtp",
                 "SMTP_URL": url, "INBOUND_DOMAIN": "in.reagenda.test", "BASE_URL": "https://reagenda.test"})


def _msg(recipient="marta@example.com"):  # type: ignore[no-untyped-def]
    return OutgoingMessage(idempotency_key="a1-reminder_48h", recipient=recipient,
                           sender="Estudio Lumen <citas@lumen.test>", subject="Recordatorio de tu cita",
                           text="Hola Marta,\n\nnos vemos el jueves.", message_id=7, locale="es")


def test_delivers_a_multipart_message_with_thread_headers(tmp_path, smtpd):  # type: ignore[no-untyped-def]
    controller, handler = smtpd
    settings = _settings(tmp_path, f"smtp://127.0.0.1:{controller.port}?tls=none")
    provider_id = email_channel(settings).send(_msg())
    assert provider_id.startswith("smtp:<rg.m7-")
    [env] = handler.received
    assert env.rcpt_tos == ["marta@example.com"]
    mail = email.message_from_bytes(env.original_content, policy=policy.default)
    assert find_message_ids(settings, mail["Reply-To"]) == [7]
    assert find_message_ids(settings, mail["Message-ID"]) == [7]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_body(("plain",)).get_content().startswith("Hola Marta")
    assert "Darse de baja" in mail.get_body(("html",)).get_content()


def test_refused_connection_is_transient(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(TransientChannelError, match="could not reach"):
        email_channel(_settings(tmp_path, "smtp://user:pw@127.0.0.1:9?tls=none")).send(_msg())


def test_password_never_in_errors(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(TransientChannelError) as info:
        email_channel(_settings(tmp_path, "smtp://user:s3cr3t-pw@127.0.0.1:9?tls=none")).send(_msg())
    assert "s3cr3t-pw" not in str(info.value)


def test_5xx_recipient_is_permanent_4xx_is_transient(tmp_path, smtpd):  # type: ignore[no-untyped-def]
    controller, handler = smtpd
    settings = _settings(tmp_path, f"smtp://127.0.0.1:{controller.port}?tls=none")
    with pytest.raises(PermanentChannelError, match="nobody@example.com"):
        email_channel(settings).send(_msg("nobody@example.com"))
    with pytest.raises(TransientChannelError, match="451"):
        email_channel(settings).send(_msg("busy@example.com"))
    assert handler.received == []


def test_starttls_is_required_unless_explicitly_disabled(tmp_path, smtpd):  # type: ignore[no-untyped-def]
    from channels.base import ChannelNotConfigured

    controller, _ = smtpd
    with pytest.raises(ChannelNotConfigured, match="STARTTLS"):
        email_channel(_settings(tmp_path, f"smtp://127.0.0.1:{controller.port}")).send(_msg())
    assert ssl  # (smtps:// uses ssl.create_default_context(); covered by the STARTTLS path's context)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_modes_with_a_login(tmp_path, mode):  # type: ignore[no-untyped-def]
    """STARTTLS on submission (required before AUTH) and implicit TLS, against aiosmtpd with a throwaway cert."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.fakes.serving import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"app-password"
        if ok:
            logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    handler = Recorder()
    port = _free_port()
    kwargs = dict(hostname="127.0.0.1", port=port, authenticator=authenticator)
    if mode == "starttls":
        controller = Controller(handler, tls_context=server_tls, require_starttls=True, auth_require_tls=True,
                                **kwargs)
        url = f"smtp://citas%40lumen.test:app-password@127.0.0.1:{port}"
    else:
        controller = Controller(handler, ssl_context=server_tls, auth_require_tls=False, **kwargs)
        url = f"smtps://citas%40lumen.test:app-password@127.0.0.1:{port}"
    controller.start()
    try:
        channel = email_channel(_settings(tmp_path, url))
        channel.tls_context = ssl.create_default_context(cafile=cert)  # trust the throwaway certificate
        assert channel.send(_msg()).startswith("smtp:")
    finally:
        controller.stop()
    assert logins == ["citas@lumen.test"] and len(handler.received) == 1
