"""Step handlers: given a step that is due now, re-decide from the current state what (if anything) to do.

A handler never trusts what was true at planning time: the appointment may have moved, been cancelled or
confirmed since. Handlers only read and decide; ``workflows.executor`` records and sends.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy.orm import Session

from store.models import Appointment, Step
from workflows.decisions import Decision, Send, Skip

Handler = Callable[[Session, Step, datetime], Decision]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind] = fn
        return fn

    return deco


# Modules that register handlers with ``@handles``; imported on first lookup so importing ``kinds`` stays cheap
# and free of cycles.
HANDLER_MODULES = ("workflows.confirmation", "workflows.noshow", "workflows.aftercare", "workflows.ghosting",
                   "workflows.handoff", "workflows.booking_steps")
_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        import importlib

        for name in HANDLER_MODULES:
            importlib.import_module(name)
        _loaded = True


def handler_for(kind: str) -> Handler | None:
    _load()
    if kind in HANDLERS:
        return HANDLERS[kind]
    if kind.startswith("reminder_"):
        return reminder
    return None


def still_current(appt: Appointment | None, step: Step) -> Skip | None:
    """The common re-decision for appointment steps: gone, cancelled or moved since planning means no send."""
    if appt is None:
        return Skip("appointment no longer exists")
    if appt.status != "scheduled":
        return Skip(f"appointment is {appt.status}")
    planned = step.payload.get("starts_at")
    if planned and datetime.fromisoformat(planned) != appt.starts_at:
        return Skip("appointment moved since this step was planned")
    return None


def reminder(session: Session, step: Step, now: datetime) -> Decision:
    appt = session.get(Appointment, step.subject_id)
    stale = still_current(appt, step)
    if stale:
        return stale
    assert appt is not None
    if now >= appt.starts_at:
        return Skip("too late: the appointment has already started")
    # The planner already chose the moment with quiet hours in mind (earlier, never later; at once when booked
    # inside the window), so the runtime limits do not move it again.
    return Send(kind="reminder", client_id=appt.client_id, appointment_id=appt.id, urgent=True,
                context={"hours": int(step.payload.get("hours", 48))})


@handles("moved_notice")
def moved_notice(session: Session, step: Step, now: datetime) -> Decision:
    """Tell the client the new time (rendered now, so a second move before it ran is not announced twice)."""
    appt = session.get(Appointment, step.subject_id)
    stale = still_current(appt, step)
    if stale:
        return stale
    assert appt is not None
    if now >= appt.starts_at:
        return Skip("too late: the appointment has already started")
    return Send(kind="moved", client_id=appt.client_id, appointment_id=appt.id)
