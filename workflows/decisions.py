"""What a step handler can decide when it runs: send a message, skip (with the reason), or finish."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Send:
    kind: str  # template name in channels/templates
    client_id: int
    appointment_id: int | None
    context: dict[str, Any] = field(default_factory=dict)
    to_owner: bool = False  # a note to the owner (owner.email, owner's language and zone) about this client
    # Sent whenever due, past the daily limit and quiet hours: the client triggered it, or deferring it would make
    # it useless (a reminder planned for the right moment, the "we are waiting for you" note during the wait).
    urgent: bool = False


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Done:
    note: str


@dataclass(frozen=True)
class Defer:
    """Not now: run the step again at ``until`` (quiet hours, the daily limit). Never a silent drop."""

    until: datetime
    reason: str


Decision = Send | Skip | Done | Defer
