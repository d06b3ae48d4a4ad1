"""Email through any SMTP server, for self-hosters: ``SMTP_URL=smtp://user:password@host:587`` (STARTTLS, required)
or ``smtps://user:password@host:465`` (TLS from the first byte). ``?tls=none`` allows a plain connection to a
local relay (and the aiosmtpd server in tests); never use it across a network.

The message is the same as SendGrid's: text + HTML, per-thread Reply-To, our Message-ID, List-Unsubscribe headers,
attachments (the ICS invitation). A refused connection, a timeout or a 4xx reply raises
``TransientChannelError`` (retried); a 5xx refusal of the recipient raises ``PermanentChannelError``; a failed
login raises ``ChannelNotConfigured``. The password is never logged.
"""
from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from channels.base import (AddressRejected, Channel, ChannelNotConfigured, OutgoingMessage,
                           PermanentChannelError, TransientChannelError)
from channels.html import text_to_html
from channels.registry import register
from channels.sendgrid import unsubscribe_headers
from channels.threads import message_id_header, reply_address
from reagenda.settings import mask_url

log = logging.getLogger(__name__)
TIMEOUT_S = 20.0


def build_mime(settings: Any, message: OutgoingMessage) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = message.sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    headers = {**unsubscribe_headers(settings, message), **message.headers}
    mail["Message-ID"] = headers.pop("Message-ID", None) or message_id_header(settings, message.message_id,
                                                                              message.idempotency_key)
    reply_to = message.reply_to or reply_address(settings, message.message_id)
    if reply_to:
        mail["Reply-To"] = reply_to
    for name, value in headers.items():
        mail[name] = value
    mail.set_content(message.text)
    unsubscribe = headers.get("List-Unsubscribe", "").split(",")[0].strip("<> ")
    mail.add_alternative(message.html or text_to_html(
        message.text, locale=message.locale, unsubscribe_url=unsubscribe if unsubscribe.startswith("http") else ""),
        subtype="html")
    for att in message.attachments:
        maintype, _, rest = att.content_type.partition("/")
        subtype, _, params = rest.partition(";")
        extra = {}
        if "method=" in params:
            extra["params"] = {"method": params.split("method=", 1)[1].strip()}
        mail.add_attachment(att.data, maintype=maintype, subtype=subtype.strip(), filename=att.filename, **extra)
    return mail


class SMTPChannel(Channel):
    key = "smtp"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        if not settings.smtp_url:
            raise ChannelNotConfigured("EMAIL_BACKEND=smtp needs SMTP_URL, e.g. smtp://user:password@host:587")
        parts = urlsplit(settings.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ChannelNotConfigured(f"SMTP_URL={mask_url(settings.smtp_url)} is not smtp://… or smtps://…")
        self.host = parts.hostname
        self.ssl = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.ssl else 587)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query)
        self.plain = query.get("tls", [""])[0] == "none"
        self.tls_context = ssl.create_default_context()
        self.where = mask_url(settings.smtp_url)

    def _connect(self) -> smtplib.SMTP:
        if self.ssl:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT_S, context=self.tls_context)
        conn = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S)
        conn.ehlo()
        if not self.plain:
            if not conn.has_extn("starttls"):
                conn.quit()
                raise ChannelNotConfigured(f"the SMTP server at {self.where} does not offer STARTTLS; use smtps:// "
                                           "or, for a local relay only, add ?tls=none")
            conn.starttls(context=self.tls_context)
            conn.ehlo()
        return conn

    def send(self, message: OutgoingMessage) -> str:
        mail = build_mime(self.settings, message)
        try:
            conn = self._connect()
            try:
                if self.user:
                    conn.login(self.user, self.password or "")
                conn.send_message(mail)
            finally:
                try:
                    conn.quit()
                except smtplib.SMTPException:
                    pass
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelNotConfigured(f"the SMTP server at {self.where} refused the login (code {exc.smtp_code}); "
                                       "check the user and password in SMTP_URL") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            detail = f"the SMTP server refused {message.recipient!r}: {code} {_s(text)}"
            if 500 <= code < 600:
                raise AddressRejected(detail, address=message.recipient) from None
            raise TransientChannelError(detail) from None
        except smtplib.SMTPNotSupportedError as exc:
            hint = "check the port, the scheme (smtp:// or smtps://) and the user"
            raise ChannelNotConfigured(f"the SMTP server at {self.where} does not support what SMTP_URL asks for "
                                       f"({exc}); {hint}") from None
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, f"the SMTP server said {exc.smtp_code} {_s(exc.smtp_error)}") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, socket.timeout,
                TimeoutError, OSError) as exc:
            raise TransientChannelError(f"could not reach the SMTP server at {self.where}: {exc}") from None
        log.info("smtp accepted message %s", message.message_id)
        return f"smtp:{mail['Message-ID']}"


def _s(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _by_code(code: int, text: str) -> Exception:
    return PermanentChannelError(text) if 500 <= code < 600 else TransientChannelError(text)


register(SMTPChannel)
