"""What a step handler can decide when it runs: send a message, skip (with the reason), or finish."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Send:
    kind: str  # template name in channels/templates
    client_id: int
    appointment_id: int | None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Done:
    note: str


Decision = Send | Skip | Done
