"""A small explicit registry of channels, one canonical key each."""
from __future__ import annotations

from channels.base import Channel, ChannelNotConfigured
from reagenda.settings import Settings

_channels: dict[str, type[Channel]] = {}


def register(cls: type[Channel]) -> type[Channel]:
    _channels[cls.key] = cls
    return cls


def _load() -> None:
    import channels.outbox  # noqa: F401
    import channels.sendgrid  # noqa: F401
    import channels.smtp  # noqa: F401


def email_channel(settings: Settings) -> Channel:
    """The email channel chosen by EMAIL_BACKEND."""
    _load()
    cls = _channels.get(settings.email_backend)
    if cls is None:
        raise ChannelNotConfigured(f"EMAIL_BACKEND={settings.email_backend} is not available in this build; "
                                   f"available: {', '.join(sorted(_channels))}")
    if not cls.enabled():
        raise ChannelNotConfigured(f"EMAIL_BACKEND={settings.email_backend} needs an optional dependency that "
                                   "is not installed")
    return cls(settings)


def message_channel(settings: Settings, medium: str) -> Channel:
    """The channel for a client's preferred medium: "email" (EMAIL_BACKEND), "sms" or "whatsapp" (Twilio)."""
    if medium == "email":
        return email_channel(settings)
    _load()
    import channels.twilio_sms  # noqa: F401

    cls = _channels.get(medium)
    if cls is None:
        raise ChannelNotConfigured(f"unknown channel {medium!r}; expected email, sms or whatsapp")
    return cls(settings)
