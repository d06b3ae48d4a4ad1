"""The channel interface and its errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from reagenda.settings import Settings


class ChannelError(Exception):
    """Base for delivery errors; the message says what failed without any secret."""


class TransientChannelError(ChannelError):
    """Worth retrying later (provider 5xx, timeout, connection refused, rate limit)."""


class PermanentChannelError(ChannelError):
    """Retrying will not help (bad address, rejected content); the address is marked, not the channel."""


class AddressRejected(PermanentChannelError):
    """The provider refused this recipient (unknown mailbox, invalid number, the client replied STOP): the client's
    address is marked (``channels.compose.mark_address_rejected``), the channel keeps working for everyone else."""

    def __init__(self, message: str, *, address: str = "") -> None:
        super().__init__(message)
        self.address = address


class ChannelNotConfigured(ChannelError):
    """The channel was selected but its settings or optional dependency are missing."""


@dataclass(frozen=True)
class OutgoingMessage:
    idempotency_key: str
    recipient: str
    sender: str
    subject: str
    text: str
    html: str = ""
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    message_id: int | None = None  # our Message row id, carried to providers that echo custom args
    # Optional, filled by ``channels.compose.outgoing_for`` (issue 5): what a channel needs for a well-formed email.
    locale: str = "es"
    kind: str = ""  # the message kind, sent as a SendGrid category
    categories: tuple[str, ...] = ()
    unsubscribe_url: str = ""
    attachments: tuple["Attachment", ...] = ()


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar; method=REQUEST"
    data: bytes


class Channel:
    key: ClassVar[str]
    medium: ClassVar[str] = "email"  # email | sms | whatsapp

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def enabled(cls) -> bool:
        """False when an optional dependency is missing."""
        return True

    def send(self, message: OutgoingMessage) -> str:
        """Deliver ``message``; return the provider's id for it. Raise a ``ChannelError`` subclass on failure."""
        raise NotImplementedError
