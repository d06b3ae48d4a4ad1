"""The owner's policy: every number in the flows is a setting with a default here.

A copy of the policy in force is stored on each appointment when it is first seen (``Appointment.policy``), so a
later change never rewrites a promise already made to a client.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class Policy:
    reminder_hours: tuple[int, ...] = (48, 2)
    quiet_start: str = "21:00"  # no client messages from quiet_start to quiet_end in the client's zone
    quiet_end: str = "08:00"
    confirmations: bool = True  # ask new appointments for a confirmation (and nudge unconfirmed ones)
    confirm_nudge_hours: int = 24
    window_hours: int = 48  # cancelling or moving at least this long before keeps the deposit
    deposit_cents: int = 0
    fee_cents: int = 0
    currency: str = "EUR"
    grace_days: int = 3
    no_show_check_minutes: int = 5
    no_show_wait_minutes: int = 15
    no_show_mode: str = "ask"  # ask | automatic
    no_show_followup_days: int = 2
    ghost_after_days: int = 3  # no answer this long after the no-show policy message: the ghosting sequence
    followup_days: int = 7
    ghost_wait_days: int = 7
    ultimatum_days: int = 7
    business_cycle_months: int = 3
    max_messages_per_day: int = 2
    offer_text: str = ""  # the owner's optional offer in the 7-day follow-up ("10% off your next session")
    # Repeat offenders (see workflows.history): thresholds and the stricter policy they switch to.
    strict_after_no_shows: int = 2
    strict_after_late_cancels: int = 3
    strict_deposit_cents: int = 3000
    strict_reminder_hours: tuple[int, ...] = (72, 24, 2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Policy":
        """Build from stored JSON, ignoring unknown keys (a snapshot may predate a setting's removal)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        for name in ("reminder_hours", "strict_reminder_hours"):
            if name in values:
                values[name] = tuple(sorted({int(h) for h in values[name]}, reverse=True))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reminder_hours"] = list(self.reminder_hours)
        data["strict_reminder_hours"] = list(self.strict_reminder_hours)
        return data
