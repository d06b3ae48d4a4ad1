"""Settings: the business, the policy and every number of the flows, channels and sender, and message texts with
a server-side preview rendered from a sample appointment.

Policy numbers are stored as overrides in ``Owner.policy`` (read by ``workflows.policy.Policy.from_dict``) and are
snapshotted on each new appointment, so a change applies to appointments first seen after it. Everything else
(working hours, sender identity, channels, message texts) lives in ``Owner.preferences``.
Owner-written message templates are rendered in Jinja's sandbox: an owner's text can use ``{{ client_name }}``
but can never reach Python objects.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jinja2 import TemplateError
from sqlalchemy.orm.attributes import flag_modified

from channels.render import sandbox
from web.auth import COMMON_ZONES, db, login_required, valid_timezone
from web.context import get_context
from workflows.policy import Policy

log = logging.getLogger(__name__)
bp = Blueprint("settings_pages", __name__, url_prefix="/settings")

CHANNEL_TEMPLATES = Path(__file__).resolve().parent.parent / "channels" / "templates"
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Field:
    name: str
    label: Any
    kind: str  # int | money | hours_list | hhmm | choice | text
    group: str
    minimum: int = 0
    maximum: int = 100000
    hint: Any = ""
    choices: tuple[tuple[str, Any], ...] = ()


POLICY_FIELDS = (
    Field("window_hours", _l("Cancellation window (hours before)"), "int", "policy", 0, 720,
          _l("Cancelling or moving at least this long before keeps the deposit.")),
    Field("deposit_cents", _l("Deposit"), "money", "policy", 0, 10_000_000, _l("0 for none.")),
    Field("fee_cents", _l("Late-cancellation / no-show fee when no deposit was taken"), "money", "policy", 0,
          10_000_000, _l("0 for none.")),
    Field("currency", _l("Currency"), "choice", "policy",
          choices=(("EUR", "EUR"), ("USD", "USD"), ("MXN", "MXN"), ("GBP", "GBP"), ("COP", "COP"), ("ARS", "ARS"),
                   ("CLP", "CLP"))),
    Field("grace_days", _l("Grace period to rebook (days after the original date)"), "int", "policy", 0, 60),
    Field("reminder_hours", _l("Reminders (hours before, comma-separated)"), "hours_list", "reminders", 1, 720,
          _l("For example 48, 2.")),
    Field("confirm_nudge_hours", _l("Nudge if unconfirmed (hours before)"), "int", "reminders", 1, 720),
    Field("no_show_check_minutes", _l("Ask “has the client arrived?” (minutes after start)"), "int", "noshow", 0, 120),
    Field("no_show_wait_minutes", _l("Wait until (minutes after start)"), "int", "noshow", 1, 240),
    Field("no_show_mode", _l("Mode"), "choice", "noshow",
          choices=(("ask", _l("Ask me")), ("automatic", _l("Automatic")))),
    Field("no_show_followup_days", _l("Follow up after a no-show (days)"), "int", "noshow", 1, 60),
    Field("followup_days", _l("Follow-up after a cancellation (days)"), "int", "ghosting", 1, 90),
    Field("ghost_after_days", _l("Start ghosting after no answer (days)"), "int", "ghosting", 1, 90),
    Field("ghost_wait_days", _l("Days between check-in and ultimatum"), "int", "ghosting", 1, 90),
    Field("ultimatum_days", _l("Days from ultimatum to closing the file"), "int", "ghosting", 1, 90),
    Field("business_cycle_months", _l("Business cycle (re-engage after)"), "choice", "ghosting",
          choices=(("1", _l("1 month")), ("3", _l("3 months")), ("12", _l("12 months")))),
    Field("offer_text", _l("Offer in the follow-up (optional)"), "text", "ghosting", 0, 300,
          _l("For example: 10% off your next session.")),
    Field("quiet_start", _l("Quiet hours start"), "hhmm", "quiet"),
    Field("quiet_end", _l("Quiet hours end"), "hhmm", "quiet"),
)
GROUPS = (("policy", _l("Cancellation policy")), ("reminders", _l("Confirmations and reminders")),
          ("noshow", _l("No-show: wait, then follow up")), ("ghosting", _l("Follow-ups and ghosting")),
          ("quiet", _l("Quiet hours (client's time zone)")))


def policy_fields() -> list[Field]:
    """Only the fields the installed ``Policy`` knows (the form follows the workflows package, never leads it)."""
    known = {f.name for f in fields(Policy)}
    return [f for f in POLICY_FIELDS if f.name in known]


def _display(field: Field, value: Any) -> str:
    if field.kind == "money":
        return f"{int(value or 0) / 100:.2f}"
    if field.kind == "hours_list":
        return ", ".join(str(v) for v in value)
    return str(value)


def parse_policy_form(form: Any, current: Policy) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (values, errors) for the policy fields; every error says what to type instead."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in policy_fields():
        raw = (form.get(f.name) or "").strip()
        try:
            values[f.name] = _parse(f, raw)
        except ValueError as exc:
            errors[f.name] = str(exc)
    if not errors and values.get("no_show_wait_minutes", 1) < values.get("no_show_check_minutes", 0):
        errors["no_show_wait_minutes"] = _("The wait must end after the question is asked.")
    return values, errors


def _parse(f: Field, raw: str) -> Any:
    if f.kind == "int":
        if not raw.isdigit() or not f.minimum <= int(raw) <= f.maximum:
            raise ValueError(_("Enter a whole number from %(lo)d to %(hi)d.", lo=f.minimum, hi=f.maximum))
        return int(raw)
    if f.kind == "money":
        try:
            cents = round(float(raw.replace(",", ".") or "0") * 100)
        except ValueError:
            raise ValueError(_("Enter an amount like 25 or 25.50.")) from None
        if not 0 <= cents <= f.maximum:
            raise ValueError(_("Enter an amount like 25 or 25.50."))
        return cents
    if f.kind == "hours_list":
        parts = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
        if not parts or not all(p.isdigit() and f.minimum <= int(p) <= f.maximum for p in parts):
            raise ValueError(_("Enter hours separated by commas, for example 48, 2."))
        return sorted({int(p) for p in parts}, reverse=True)
    if f.kind == "hhmm":
        if not HHMM.match(raw):
            raise ValueError(_("Enter a time like 21:00."))
        return raw
    if f.kind == "choice":
        allowed = [c[0] for c in f.choices]
        if raw not in allowed:
            raise ValueError(_("Choose one of the options."))
        return int(raw) if f.name == "business_cycle_months" else raw
    if len(raw) > f.maximum:
        raise ValueError(_("Keep it under %(n)d characters.", n=f.maximum))
    return raw


# ------------------------------------------------------------------------------------------ pages


@bp.route("", methods=["GET", "POST"])
@login_required
def index():  # type: ignore[no-untyped-def]
    owner = g.owner
    prefs = dict(owner.preferences or {})
    policy = Policy.from_dict(owner.policy)
    errors: dict[str, str] = {}
    if request.method == "POST":
        section = request.form.get("section", "")
        if section == "business":
            errors = _save_business(owner, prefs)
        elif section == "policy":
            values, errors = parse_policy_form(request.form, policy)
            if not errors:
                owner.policy = {**(owner.policy or {}), **values}
                flag_modified(owner, "policy")
                reasons = [r.strip() for r in request.form.get("waiver_reasons", "").splitlines() if r.strip()]
                prefs["waiver_reasons"] = reasons[:20]
        elif section == "channels":
            errors = _save_channels(prefs)
        else:
            errors = {"section": _("Unknown form section.")}
        if not errors:
            owner.preferences = prefs
            flag_modified(owner, "preferences")
            db().commit()
            flash(_("Saved. New appointments use these settings; existing ones keep the policy they were booked under."),
                  "ok")
            return redirect(url_for("settings_pages.index") + f"#{section}")
        db().rollback()
        flash(_("Some values need fixing; see the messages next to them."), "error")
    values = {f.name: request.form.get(f.name) if errors and f.name in request.form
              else _display(f, getattr(policy, f.name)) for f in policy_fields()}
    return render_template("settings/index.html", owner=owner, prefs=prefs, fields=policy_fields(), groups=GROUPS,
                           values=values, errors=errors, zones=COMMON_ZONES, weekdays=WEEKDAYS,
                           hours=prefs.get("working_hours") or default_hours()), (400 if errors else 200)


def default_hours() -> dict[str, Any]:
    return {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}


def _save_business(owner: Any, prefs: dict[str, Any]) -> dict[str, str]:
    form = request.form
    errors: dict[str, str] = {}
    tzname = form.get("timezone", "").strip()
    if not valid_timezone(tzname):
        errors["timezone"] = _("Choose a time zone from the list, for example Europe/Madrid.")
    start, end = form.get("work_start", ""), form.get("work_end", "")
    if not HHMM.match(start) or not HHMM.match(end) or start >= end:
        errors["work_start"] = _("Enter opening and closing times like 09:00 and 18:00, opening first.")
    if errors:
        return errors
    owner.business_name = form.get("business_name", "").strip()[:200]
    owner.name = form.get("name", "").strip()[:200]
    owner.timezone = tzname
    owner.locale = form.get("locale") if form.get("locale") in ("es", "en") else owner.locale
    prefs["working_hours"] = {"days": [d for d in WEEKDAYS if form.get(f"day_{d}")], "start": start, "end": end}
    return errors


def _save_channels(prefs: dict[str, Any]) -> dict[str, str]:
    form = request.form
    reply_to = form.get("reply_to", "").strip()
    if reply_to and ("@" not in reply_to or len(reply_to) > 320):
        return {"reply_to": _("Enter an email address like ana@example.com, or leave it empty.")}
    prefs["sender_name"] = form.get("sender_name", "").strip()[:120]
    prefs["reply_to"] = reply_to
    prefs["channels"] = [c for c in ("email", "sms", "whatsapp") if form.get(f"channel_{c}")] or ["email"]
    return {}


# ------------------------------------------------------------------------------------------ message texts


def message_kinds() -> list[str]:
    kinds = {p.stem for p in CHANNEL_TEMPLATES.glob("*/*.txt") if not p.stem.startswith("_")}
    return sorted(kinds)


def default_text(kind: str, lang: str) -> str:
    path = CHANNEL_TEMPLATES / lang / f"{kind}.txt"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def sample_context(owner: Any, lang: str, kind: str) -> dict[str, Any]:
    """The real message context (``workflows.outbound.message_context``) for a believable, unsaved appointment
    two days ahead at 10:00 in the owner's zone, plus a sample of every per-kind value the templates use."""
    from store.models import Appointment, Client
    from workflows.outbound import message_context

    zone = ZoneInfo(owner.timezone)
    local = (datetime.now(timezone.utc) + timedelta(days=2)).astimezone(zone)
    starts = local.replace(hour=10, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
    client = Client(id=0, owner_id=owner.id, email="marta@example.com", phone="+34 600 000 000",
                    name="Marta" if lang == "es" else "Martha", preferred_channel="email")
    appt = Appointment(id=0, owner_id=owner.id, client_id=0, title="Sesión" if lang == "es" else "Session",
                       starts_at=starts, ends_at=starts + timedelta(hours=1), location="",
                       meeting_link="https://meet.example.com/abc-defg-hij")
    policy = Policy.from_dict(owner.policy)
    ctx = message_context(get_context().settings, owner, client, appt, lang, owner.timezone, policy)
    ctx.update(hours=48 if "reminder" in kind else 2, reason="price", intent="reschedule", what="booked",
               invoice_number="2026-0001", invoice_cents=4000, outstanding_cents=4000, charge_kind="fee",
               charge_cents=policy.fee_cents or 4000, closing=starts + timedelta(days=14),
               wait_until=starts + timedelta(minutes=policy.no_show_wait_minutes),
               reply_text="Llego 10 minutos tarde" if lang == "es" else "Running 10 minutes late",
               reply_channel="email", provider="Google")
    return ctx


_sandbox = sandbox  # the same sandbox that renders the owner's texts when messages are sent (channels/render.py)


def render_preview(source: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, body, error): the owner's text rendered in the sandbox; an error names the problem."""
    try:
        out = _sandbox.from_string(source).render(**context)
    except TemplateError as exc:
        return "", "", _("The text has a problem: %(error)s. Check the {{ … }} placeholders.", error=str(exc))
    first, _sep, body = out.partition("\n")
    if not first.startswith("Subject:"):
        return "", out, _("The first line must start with “Subject:”.")
    return first.removeprefix("Subject:").strip(), body.lstrip("\n"), ""


@bp.route("/messages", methods=["GET", "POST"])
@login_required
def messages():  # type: ignore[no-untyped-def]
    owner = g.owner
    kinds = message_kinds()
    kind = request.values.get("kind") or (kinds[0] if kinds else "reminder")
    lang = request.values.get("lang_text") or owner.locale
    if kind not in kinds or lang not in ("es", "en"):
        kind, lang = (kinds[0] if kinds else "reminder"), owner.locale
    prefs = dict(owner.preferences or {})
    texts: dict[str, Any] = {k: dict(v) for k, v in (prefs.get("texts") or {}).items()}
    saved = texts.get(lang, {}).get(kind)
    source = saved if saved is not None else default_text(kind, lang)
    status = 200
    if request.method == "POST":
        source = request.form.get("text", "")[:20000].replace("\r\n", "\n")
        action = request.form.get("action", "preview")
        if action == "reset":
            texts.get(lang, {}).pop(kind, None)
            source = default_text(kind, lang)
        subject, body, error = render_preview(source, sample_context(owner, lang, kind))
        if action in ("save", "reset") and not error:
            if action == "save":
                texts.setdefault(lang, {})[kind] = source
            prefs["texts"] = texts
            owner.preferences = prefs
            flag_modified(owner, "preferences")
            db().commit()
            flash(_("Message text saved.") if action == "save" else _("Back to the default text."), "ok")
        elif error:
            status = 400
    subject, body, error = render_preview(source, sample_context(owner, lang, kind))
    return render_template("settings/messages.html", kinds=kinds, kind=kind, lang_text=lang, source=source,
                           subject=subject, body=body, error=error, customised=saved is not None), status


