"""SMS and WhatsApp through Twilio's Messages API, with the optional ``twilio`` library.

Selected per client (``Client.preferred_channel``) through ``channels.registry.message_channel``. Needs
``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and ``TWILIO_FROM`` (SMS) or ``TWILIO_WHATSAPP_FROM`` (WhatsApp);
missing settings or a missing ``twilio`` package raise ``ChannelNotConfigured`` naming what to set or install.
Errors: 5xx, 429 and network failures are ``TransientChannelError`` (retried); an invalid or unreachable number,
or a client who replied STOP (Twilio codes 21211, 21214, 21217, 21408, 21610, 21612, 21614, 63003, 63024) is
``AddressRejected`` (the client's number is marked, not the channel); a bad SID/token is ``ChannelNotConfigured``.
``TWILIO_HOST`` points the library at a local fake in tests. The auth token is never logged.
"""
from __future__ import annotations

import logging
from typing import Any

from channels.base import (AddressRejected, Channel, ChannelNotConfigured, OutgoingMessage, PermanentChannelError,
                           TransientChannelError)
from channels.registry import register

log = logging.getLogger(__name__)
BAD_NUMBER_CODES = frozenset({21211, 21214, 21217, 21408, 21610, 21612, 21614, 63003, 63024})
AUTH_CODES = frozenset({20003, 20005, 20008})
MAX_SMS_CHARS = 1500  # Twilio accepts 1600; keep room for the opt-out line


class _TwilioChannel(Channel):
    sender_setting: str = "twilio_from"
    prefix: str = ""

    @classmethod
    def enabled(cls) -> bool:
        try:
            import twilio  # noqa: F401
        except ImportError:
            return False
        return True

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        if not self.enabled():
            raise ChannelNotConfigured(f"the {self.key} channel needs the twilio package: pip install 'twilio>=9'")
        missing = [name for name, value in (("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                                            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                                            (self.sender_setting.upper(), getattr(settings, self.sender_setting)))
                   if not value]
        if missing:
            raise ChannelNotConfigured(f"the {self.key} channel is selected but {', '.join(missing)} "
                                       f"{'is' if len(missing) == 1 else 'are'} not set")

    def _client(self) -> Any:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        client = Client(self.settings.twilio_account_sid, self.settings.twilio_auth_token,
                        http_client=TwilioHttpClient(timeout=20))
        if self.settings.twilio_host:
            client.api.base_url = self.settings.twilio_host
        return client

    def _address(self, number: str) -> str:
        number = number.strip()
        if self.prefix and not number.startswith(self.prefix):
            return self.prefix + number
        return number

    def send(self, message: OutgoingMessage) -> str:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        body = message.text.strip()
        if len(body) > MAX_SMS_CHARS:
            body = body[:MAX_SMS_CHARS - 1] + "…"
        if message.unsubscribe_url:
            body += ("\nBaja: " if message.locale == "es" else "\nStop: ") + message.unsubscribe_url
        to = self._address(message.recipient)
        sender = self._address(getattr(self.settings, self.sender_setting))
        try:
            sent = self._client().messages.create(to=to, from_=sender, body=body)
        except TwilioRestException as exc:
            raise _classify(exc, message.recipient) from None
        except (requests.RequestException, TwilioException, OSError) as exc:
            raise TransientChannelError(f"Twilio could not be reached: {type(exc).__name__}") from None
        log.info("twilio accepted %s message %s (%s)", self.key, message.message_id, sent.sid)
        return f"twilio:{sent.sid}"


def _classify(exc: Any, recipient: str) -> Exception:
    status, code = int(exc.status or 0), exc.code
    detail = f"Twilio said {status}" + (f" (error {code})" if code else "") + f": {exc.msg}"[:300]
    if status in (401, 403) or code in AUTH_CODES:
        return ChannelNotConfigured("Twilio rejected the credentials; check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    if status == 429 or status >= 500:
        return TransientChannelError(detail)
    if code in BAD_NUMBER_CODES:
        return AddressRejected(f"Twilio refused the number {recipient!r}: {detail}", address=recipient)
    return PermanentChannelError(detail)


class TwilioSMSChannel(_TwilioChannel):
    key = "sms"
    medium = "sms"


class TwilioWhatsAppChannel(_TwilioChannel):
    key = "whatsapp"
    medium = "whatsapp"
    sender_setting = "twilio_whatsapp_from"
    prefix = "whatsapp:"


register(TwilioSMSChannel)
register(TwilioWhatsAppChannel)
