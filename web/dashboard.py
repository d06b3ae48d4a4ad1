"""The owner's dashboard: appointments with their state and one-click attendance, the per-appointment timeline,
clients with history and reliability, the replies inbox, the outbox, and the ledger with invoices and CSV.

Every query is scoped to the signed-in owner (``owner_id == g.owner_id``) and every id in a URL goes through
``web.auth.owned``. The flows themselves (attendance, waivers, ghosting) are the workflow functions of issue 4;
this module only decides what to show and calls them.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from store.models import Appointment, Client, LedgerEntry, Message, Reply, Step
from web.auth import db, login_required, now, owned

log = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__)

# ------------------------------------------------------------------------------------------ states and labels

STATE_LABELS = {
    "unconfirmed": _l("Unconfirmed"), "confirmed": _l("Confirmed"), "reminded": _l("Reminded"),
    "waiting": _l("Waiting (not yet)"), "arrived": _l("Arrived"), "no_show": _l("No-show"),
    "cancelled": _l("Cancelled"), "cancelled_late": _l("Cancelled late"), "rescheduled": _l("Rescheduled"),
    "ghosting_1": _l("Ghosting: step 1"), "ghosting_2": _l("Ghosting: step 2"), "closed": _l("Closed"),
    "done": _l("Done"),
}

STEP_LABELS = {
    "confirm_request": _l("Confirmation request"), "confirm_nudge": _l("Confirmation nudge to the client"),
    "confirm_owner_note": _l("Note to you: still unconfirmed"), "moved_notice": _l("New time sent to the client"),
    "arrival_check": _l("Ask you: has the client arrived?"), "not_yet_notice": _l("“We are waiting for you” to the client"),
    "noshow_deadline": _l("End of the wait: no-show if not arrived"), "noshow_waited": _l("“We waited for you” to the client"),
    "noshow_policy": _l("No-show policy and a request for a new time"), "noshow_ghost": _l("Start the ghosting sequence"),
    "cancel_thanks": _l("Thanks, “why?” and reschedule link"), "cancel_followup": _l("Casual follow-up"),
    "reengage": _l("Re-engagement after the business cycle"), "grace_check": _l("Deposit carry-over check"),
    "ghost_checkin": _l("Ghosting step 1: a check-in"), "ghost_ultimatum": _l("Ghosting step 2: the ultimatum"),
    "ghost_close": _l("Close the file and invoice"), "reminder": _l("Reminder"), "password_reset": _l("Password reset"),
}

STEP_STATE_LABELS = {
    "pending": _l("planned"), "queued": _l("sending"), "running": _l("sending"), "done": _l("done"),
    "skipped": _l("skipped"), "failed": _l("failed"), "cancelled": _l("no longer needed"),
}

LEDGER_LABELS = {
    "deposit": _l("Deposit"), "deposit_kept": _l("Deposit kept"), "fee": _l("Fee owed"), "waiver": _l("Waived"), "carry_over": _l("Deposit carried over"),
    "payment": _l("Payment"), "invoice": _l("Invoice"),
}


def step_label(kind: str) -> str:
    if kind.startswith("reminder_") and kind.endswith("h"):
        return _("Reminder %(hours)s h before", hours=kind[len("reminder_"):-1])
    label = STEP_LABELS.get(kind)
    return str(label) if label else kind.replace("_", " ")


def appointment_state(appt: Appointment, steps: Iterable[Step], client: Client | None) -> str:
    """One word for where an appointment stands, most decisive fact first."""
    kinds_done = {s.kind for s in steps if s.state == "done"}
    if client is not None and client.state == "closed":
        return "closed"
    if client is not None and client.state == "ghosting":
        return "ghosting_2" if "ghost_ultimatum" in kinds_done else "ghosting_1"
    if appt.status == "cancelled":
        return "cancelled_late" if getattr(appt, "late_cancel", False) else "cancelled"
    if appt.attendance == "no_show":
        return "no_show"
    if appt.attendance == "arrived":
        return "arrived"
    if appt.attendance == "waiting":
        return "waiting"
    if getattr(appt, "move_count", 0):
        return "rescheduled"
    if appt.confirmation == "confirmed":
        return "confirmed"
    if any(k.startswith("reminder_") for k in kinds_done):
        return "reminded"
    return "unconfirmed"


def _steps_by_appointment(ids: list[int]) -> dict[int, list[Step]]:
    out: dict[int, list[Step]] = {i: [] for i in ids}
    if ids:
        for step in db().scalars(select(Step).where(Step.owner_id == g.owner_id, Step.subject_type == "appointment",
                                                    Step.subject_id.in_(ids))):
            out.setdefault(step.subject_id, []).append(step)
    return out


@dataclass
class Row:
    appt: Appointment
    state: str
    can_mark: bool


def _rows(appts: list[Appointment], current: datetime) -> list[Row]:
    steps = _steps_by_appointment([a.id for a in appts])
    rows = []
    for a in appts:
        state = appointment_state(a, steps.get(a.id, []), a.client)
        can_mark = (a.status == "scheduled" and a.attendance in ("unknown", "waiting")
                    and a.starts_at - timedelta(hours=1) <= current <= a.ends_at + timedelta(hours=12))
        rows.append(Row(a, state, can_mark))
    return rows


# ------------------------------------------------------------------------------------------ appointments


@bp.get("/")
@login_required
def home():  # type: ignore[no-untyped-def]
    current = now()
    zone = ZoneInfo(g.owner.timezone)
    local = current.astimezone(zone)
    day_start = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    day_end = day_start + timedelta(days=1)
    base = select(Appointment).where(Appointment.owner_id == g.owner_id).order_by(Appointment.starts_at)
    today = list(db().scalars(base.where(Appointment.starts_at >= day_start, Appointment.starts_at < day_end)))
    upcoming = list(db().scalars(base.where(Appointment.starts_at >= day_end,
                                            Appointment.starts_at < day_end + timedelta(days=30)).limit(100)))
    recent = list(db().scalars(
        select(Appointment).where(Appointment.owner_id == g.owner_id, Appointment.starts_at < day_start,
                                  Appointment.starts_at >= day_start - timedelta(days=7))
        .order_by(Appointment.starts_at.desc()).limit(30)))
    from store.models import CalendarConnection

    has_calendar = db().scalar(select(func.count()).select_from(CalendarConnection)
                               .where(CalendarConnection.owner_id == g.owner_id)) or 0
    waiting_replies = db().scalar(select(func.count()).select_from(Reply).where(
        Reply.owner_id == g.owner_id, Reply.needs_owner.is_(True), Reply.auto_reply.is_(False))) or 0
    return render_template("dashboard/home.html", today=_rows(today, current), upcoming=_rows(upcoming, current),
                           recent=_rows(recent, current), has_calendar=has_calendar, labels=STATE_LABELS,
                           waiting_replies=waiting_replies, now=current)


@bp.get("/appointments/<int:appt_id>")
@login_required
def appointment(appt_id: int):  # type: ignore[no-untyped-def]
    appt: Appointment = owned(Appointment, appt_id)
    steps = list(db().scalars(select(Step).where(Step.owner_id == g.owner_id, Step.subject_type == "appointment",
                                                 Step.subject_id == appt.id)))
    client_steps = list(db().scalars(select(Step).where(Step.owner_id == g.owner_id, Step.subject_type == "client",
                                                        Step.subject_id == appt.client_id)))
    row = _rows([appt], now())[0]
    row.state = appointment_state(appt, steps + client_steps, appt.client)
    from web.timeline import build_timeline

    return render_template("dashboard/appointment.html", row=row, appt=appt, labels=STATE_LABELS,
                           timeline=build_timeline(db(), appt, steps + client_steps, now()),
                           policy=appt.policy or {}, waiver_reasons=waiver_reasons(g.owner))


ATTENDANCE = ("arrived", "not_yet", "no_show")


@bp.post("/appointments/<int:appt_id>/attendance")
@login_required
def attendance(appt_id: int):  # type: ignore[no-untyped-def]
    appt: Appointment = owned(Appointment, appt_id)
    action = request.form.get("action", "")
    if action not in ATTENDANCE:
        abort(400)
    from workflows import noshow

    fn = {"arrived": noshow.mark_arrived, "not_yet": noshow.mark_not_yet, "no_show": noshow.mark_no_show}[action]
    fn(db(), appt, now())
    db().commit()
    messages = {"arrived": _("Marked as arrived."), "not_yet": _("Noted: not yet. The client gets a short message."),
                "no_show": _("Marked as a no-show. The follow-up has started.")}
    flash(messages[action], "ok")
    return redirect(_back(url_for("dashboard.appointment", appt_id=appt.id)))


@bp.post("/appointments/<int:appt_id>/waive")
@login_required
def waive(appt_id: int):  # type: ignore[no-untyped-def]
    appt: Appointment = owned(Appointment, appt_id)
    reason = request.form.get("reason", "").strip()[:300]
    if not reason:
        flash(_("Choose or write a reason for the waiver."), "error")
        return redirect(url_for("dashboard.appointment", appt_id=appt.id))
    from workflows import ledger

    ledger.waive(db(), appt, reason, now())
    db().commit()
    flash(_("Waived. The reason is recorded in the ledger."), "ok")
    return redirect(url_for("dashboard.appointment", appt_id=appt.id))


def waiver_reasons(owner: Any) -> list[str]:
    reasons = (owner.preferences or {}).get("waiver_reasons")
    if reasons:
        return list(reasons)
    return [_("Emergency"), _("Illness"), _("First time"), _("Goodwill")]


def _back(default: str) -> str:
    from web.auth import safe_next

    return safe_next(request.form.get("next"), default)


# ------------------------------------------------------------------------------------------ clients


@bp.get("/clients")
@login_required
def clients():  # type: ignore[no-untyped-def]
    from web.history import histories

    rows = list(db().scalars(select(Client).where(Client.owner_id == g.owner_id).order_by(Client.name, Client.email)))
    return render_template("dashboard/clients.html", clients=rows, histories=histories(db(), g.owner_id, rows, now()))


@bp.get("/clients/<int:client_id>")
@login_required
def client(client_id: int):  # type: ignore[no-untyped-def]
    from web.history import histories

    c: Client = owned(Client, client_id)
    appts = list(db().scalars(select(Appointment).where(Appointment.owner_id == g.owner_id,
                                                        Appointment.client_id == c.id)
                              .order_by(Appointment.starts_at.desc())))
    entries = list(db().scalars(select(LedgerEntry).where(LedgerEntry.owner_id == g.owner_id,
                                                          LedgerEntry.client_id == c.id)
                                .order_by(LedgerEntry.created_at.desc())))
    replies = list(db().scalars(select(Reply).where(Reply.owner_id == g.owner_id, Reply.client_id == c.id)
                                .order_by(Reply.received_at.desc()).limit(50)))
    return render_template("dashboard/client.html", client=c, rows=_rows(appts, now()), labels=STATE_LABELS,
                           history=histories(db(), g.owner_id, [c], now())[c.id], entries=entries, replies=replies,
                           ledger_labels=LEDGER_LABELS)


@bp.post("/clients/<int:client_id>/ghosting")
@login_required
def start_ghosting(client_id: int):  # type: ignore[no-untyped-def]
    c: Client = owned(Client, client_id)
    from workflows import ghosting

    ghosting.start_ghosting(db(), c, now())
    db().commit()
    flash(_("The two-step check-in has started for %(name)s.", name=c.name or c.email), "ok")
    return redirect(url_for("dashboard.client", client_id=c.id))


# ------------------------------------------------------------------------------------------ replies and outbox


@bp.get("/replies")
@login_required
def replies():  # type: ignore[no-untyped-def]
    rows = list(db().scalars(select(Reply).where(Reply.owner_id == g.owner_id, Reply.auto_reply.is_(False))
                             .order_by(Reply.needs_owner.desc(), Reply.received_at.desc()).limit(200)))
    clients_by_id = _clients_for([r.client_id for r in rows])
    return render_template("dashboard/replies.html", replies=rows, clients=clients_by_id)


@bp.post("/replies/<int:reply_id>/handled")
@login_required
def reply_handled(reply_id: int):  # type: ignore[no-untyped-def]
    reply: Reply = owned(Reply, reply_id)
    reply.needs_owner = False
    db().commit()
    flash(_("Marked as handled."), "ok")
    return redirect(url_for("dashboard.replies"))


@bp.get("/outbox")
@login_required
def outbox():  # type: ignore[no-untyped-def]
    rows = list(db().scalars(select(Message).where(Message.owner_id == g.owner_id)
                             .order_by(Message.created_at.desc(), Message.id.desc()).limit(200)))
    return render_template("dashboard/outbox.html", messages=rows, kind_label=step_label)


@bp.get("/outbox/<int:message_id>")
@login_required
def message(message_id: int):  # type: ignore[no-untyped-def]
    msg: Message = owned(Message, message_id)
    body = msg.body_text
    if msg.kind == "password_reset":
        body = _("(The reset link is not shown here. It was sent to %(email)s.)", email=msg.recipient)
    return render_template("dashboard/message.html", msg=msg, body=body, kind_label=step_label)


def _clients_for(ids: Iterable[int | None]) -> dict[int, Client]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {c.id: c for c in db().scalars(select(Client).where(Client.owner_id == g.owner_id, Client.id.in_(wanted)))}


# ------------------------------------------------------------------------------------------ ledger and invoices


def _ledger_rows() -> list[LedgerEntry]:
    return list(db().scalars(select(LedgerEntry).where(LedgerEntry.owner_id == g.owner_id)
                             .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())))


def ledger_totals(entries: Iterable[LedgerEntry]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for e in entries:
        totals[e.kind] = totals.get(e.kind, 0) + e.amount_cents
    return totals


@bp.get("/ledger")
@login_required
def ledger():  # type: ignore[no-untyped-def]
    entries = _ledger_rows()
    invoices = sorted({e.invoice_number for e in entries if e.invoice_number}, reverse=True)
    return render_template("dashboard/ledger.html", entries=entries, totals=ledger_totals(entries),
                           clients=_clients_for(e.client_id for e in entries), labels=LEDGER_LABELS,
                           invoices=invoices)


@bp.get("/ledger.csv")
@login_required
def ledger_csv():  # type: ignore[no-untyped-def]
    entries = _ledger_rows()
    clients_by_id = _clients_for(e.client_id for e in entries)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date_utc", "client_email", "client_name", "kind", "amount", "currency", "reason",
                     "invoice_number", "appointment_id"])
    for e in entries:
        c = clients_by_id.get(e.client_id)
        writer.writerow([e.created_at.isoformat(), _csv_safe(c.email if c else ""), _csv_safe(c.name if c else ""),
                         e.kind, f"{e.amount_cents / 100:.2f}", e.currency, _csv_safe(e.reason),
                         e.invoice_number or "", e.appointment_id or ""])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=reagenda-ledger.csv"})


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas: a client's name is data, never a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/invoices/<number>")
@login_required
def invoice(number: str):  # type: ignore[no-untyped-def]
    entries = list(db().scalars(select(LedgerEntry).where(LedgerEntry.owner_id == g.owner_id,
                                                          LedgerEntry.invoice_number == number)
                                .order_by(LedgerEntry.created_at)))
    if not entries:
        abort(404)
    invoice_entry = next((e for e in entries if e.kind == "invoice"), entries[0])
    client_row = db().get(Client, invoice_entry.client_id)
    # The lines: this client's charges, waivers and payments up to the invoice date (what the total is made of).
    lines = list(db().scalars(select(LedgerEntry).where(
        LedgerEntry.owner_id == g.owner_id, LedgerEntry.client_id == invoice_entry.client_id,
        LedgerEntry.kind.in_(("fee", "deposit_kept", "waiver", "payment")),
        LedgerEntry.created_at <= invoice_entry.created_at).order_by(LedgerEntry.created_at)))
    total = invoice_entry.amount_cents if invoice_entry.kind == "invoice" else sum(
        e.amount_cents * (-1 if e.kind in ("waiver", "payment") else 1) for e in lines)
    entries = [invoice_entry]
    return render_template("dashboard/invoice.html", number=number, entries=lines, client=client_row,
                           total=total, currency=invoice_entry.currency, issued=invoice_entry.created_at,
                           labels=LEDGER_LABELS)

