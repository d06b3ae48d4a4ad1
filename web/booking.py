"""The client-facing booking pages: ``/book/<owner-slug>/<type>`` for new or returning clients and
``/reschedule/<token>`` behind the signed reschedule link in every message.

Both show the next free slots across all of the owner's calendars, in the client's zone and language. Free/busy is
read through a short cache (``BUSY_TTL``) so the page stays fast under load; the booking itself always re-checks
live (``workflows.booking``) and answers "that time was just taken" with fresh slots when the cache was stale or
another client was quicker. Forms carry the app's CSRF token (``web.csrf``). Texts are here in Spanish and English
so the client pages do not depend on the owner pages' catalog.
"""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.links import LinkError, make_token, read_link
from channels.render import format_when, pick_locale
from reagenda.runtime import Context
from store.models import Appointment, AppointmentType, BookingSettings, Client, Owner
from web.context import get_context
from workflows import ledger
from workflows.availability import BookingRules, SlotShape, days_for_client, preferred_slots
from workflows.booking import (BookingError, CalendarUnavailable, ClientDetails, ConnectorFactory, NotBookable,
                               OwnerCalendars, SlotTaken, book, default_connectors, history_starts, move,
                               offer_slots, rules_for, shape_for_appointment, shape_of)
from workflows.policy import Policy

log = logging.getLogger(__name__)
bp = Blueprint("booking", __name__)

BUSY_TTL = 20  # seconds a page may show free/busy that old; booking re-checks live
CONFIG_TTL = 5.0  # seconds the pages reuse an owner's calendar list and hours (per app, in this process)
BUSY_STALE_MAX = 60  # while one request refreshes an expired entry, others may serve it up to this age
DAYS_SHOWN = 7
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ZONES = ("Europe/Madrid", "Atlantic/Canary", "Europe/London", "America/Mexico_City", "America/Bogota",
         "America/Lima", "America/Santiago", "America/Argentina/Buenos_Aires", "America/New_York",
         "America/Los_Angeles", "UTC")
CHANNELS = ("email", "sms", "whatsapp")

T: dict[str, dict[str, str]] = {
    "es": {
        "book_title": "Reserva tu cita", "reschedule_title": "Cambia tu cita", "current": "Tu cita ahora",
        "choose": "Elige una hora", "none": "No hay horas libres en estos días.", "later": "Ver días siguientes",
        "earlier": "Ver días anteriores", "suggested": "Tus horas habituales", "duration": "Duración",
        "minutes": "min", "name": "Nombre", "email": "Correo electrónico", "phone": "Teléfono",
        "phone_hint": "Opcional; para SMS o WhatsApp", "language": "Idioma", "channel": "Prefiero que me avisen por",
        "timezone": "Zona horaria", "show": "Ver en esta zona", "book": "Reservar", "move": "Cambiar a esta hora",
        "taken": "Esa hora se acaba de ocupar. Estas son las horas libres ahora mismo.",
        "calendar": "Ahora mismo no podemos comprobar ni escribir en la agenda. No se ha reservado nada; "
                    "inténtalo de nuevo en unos minutos. Ya hemos avisado a {business}.",
        "not_bookable": "Esta cita ya no se puede reservar desde aquí: {detail}",
        "missing": "Revisa los campos marcados.", "need_slot": "Elige una hora.",
        "need_name": "Escribe tu nombre.", "need_email": "Escribe un correo válido, p. ej. nombre@ejemplo.com.",
        "booked": "¡Reservado! Te hemos enviado la confirmación por correo.",
        "moved": "¡Cambiado! Te hemos enviado la nueva hora por correo.", "when": "Cuándo",
        "change_again": "¿Necesitas cambiarla?", "cancelled": "Esta cita se canceló. Elige una nueva hora.",
        "email_ch": "Correo", "sms_ch": "SMS", "whatsapp_ch": "WhatsApp", "in_zone": "Horas en {zone}",
        "policy_keep": "Si la cambias ahora, tu depósito de {amount} pasa a la nueva hora.",
        "policy_lost": "Faltan menos de {hours} h: si la cambias ahora, el depósito de {amount} no se devuelve.",
        "policy_fee": "Faltan menos de {hours} h: si la cambias ahora, se cobra {amount}.",
        "policy_free": "Puedes cambiarla sin coste.",
        "policy_late": "Faltan menos de {hours} h para tu cita, pero puedes cambiarla sin coste.",
    },
    "en": {
        "book_title": "Book your appointment", "reschedule_title": "Change your appointment",
        "current": "Your appointment now", "choose": "Choose a time", "none": "No free times on these days.",
        "later": "Later days", "earlier": "Earlier days", "suggested": "Your usual times", "duration": "Length",
        "minutes": "min", "name": "Name", "email": "Email", "phone": "Phone", "phone_hint": "Optional; for SMS or WhatsApp",
        "language": "Language", "channel": "Send me reminders by", "timezone": "Time zone", "show": "Show in this zone",
        "book": "Book", "move": "Move to this time",
        "taken": "That time was just taken. These are the free times right now.",
        "calendar": "We cannot check or write the calendar right now. Nothing was booked; please try again in a "
                    "few minutes. {business} has been told.",
        "not_bookable": "This appointment cannot be booked here any more: {detail}",
        "missing": "Please check the marked fields.", "need_slot": "Choose a time.",
        "need_name": "Please write your name.", "need_email": "Please write a valid email, e.g. name@example.com.",
        "booked": "Booked! We sent you the confirmation by email.",
        "moved": "Moved! We sent you the new time by email.", "when": "When",
        "change_again": "Need to change it?", "cancelled": "This appointment was cancelled. Choose a new time.",
        "email_ch": "Email", "sms_ch": "SMS", "whatsapp_ch": "WhatsApp", "in_zone": "Times in {zone}",
        "policy_keep": "If you move it now, your {amount} deposit carries over to the new time.",
        "policy_lost": "Less than {hours} hours to go: if you move it now, the {amount} deposit is kept.",
        "policy_fee": "Less than {hours} hours to go: if you move it now, {amount} is charged.",
        "policy_free": "You can move it free of charge.",
        "policy_late": "Less than {hours} hours to go, but you can still move it free of charge.",
    },
}


def _factory() -> ConnectorFactory:
    """Tests and the benchmark may install their own (e.g. counting) factory in ``app.extensions``."""
    factory = current_app.extensions.get("reagenda.connectors")
    return factory or default_connectors(current_app.extensions["reagenda.settings"])


def _locale(*preferred: str | None) -> str:
    asked = request.values.get("lang") or session.get("lang")
    if asked in T:
        return str(asked)
    return pick_locale(*preferred, request.accept_languages.best_match(list(T)))


def _zone(default: str) -> str:
    asked = request.values.get("tz", "")
    try:
        if asked:
            ZoneInfo(asked)
            return asked
    except (KeyError, ValueError):
        pass
    return default


def _start_day(owner_tz: str, now: datetime) -> datetime:
    """``?from=YYYY-MM-DD`` pages through later weeks; never before now."""
    raw = request.values.get("from", "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return now
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(owner_tz)).astimezone(timezone.utc)
    return max(start, now)


# ------------------------------------------------------------------------------------------------ free/busy cache


class CachedCalendars(OwnerCalendars):
    """Free/busy for the pages, cached in one Redis hash per owner (field: whole-day window) for ``BUSY_TTL``
    seconds: one round trip per page view. ``forget_busy`` deletes the hash after every booking and move, so a
    client never sees their own booking as free."""

    def __init__(self, session: Session, owner_id: int, factory: ConnectorFactory, ctx: Context) -> None:
        configs = current_app.extensions.setdefault("reagenda.booking_config", {})
        cached = configs.get(owner_id)
        fresh = cached is not None and cached[0] > time.monotonic()
        super().__init__(session, owner_id, factory, sources=cached[1] if fresh and cached else None)
        if not fresh:
            owner = session.get(Owner, owner_id)
            assert owner is not None
            configs[owner_id] = (time.monotonic() + CONFIG_TTL, self.sources, rules_for(session, owner))
        self.rules: BookingRules = configs[owner_id][2]
        self.ctx, self.owner_id = ctx, owner_id

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        lo = start.replace(hour=0, minute=0, second=0, microsecond=0)
        hi = end.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        key, field = f"rg:busy:{self.owner_id}", f"{lo:%Y%m%d}-{hi:%Y%m%d}"
        now = time.time()
        try:
            cached = self.ctx.redis.hget(key, field)
        except Exception as exc:  # noqa: BLE001 - Redis trouble only costs speed here
            log.warning("free/busy cache unavailable: %s", type(exc).__name__)
            return super().busy(start, end)
        entry = json.loads(cached) if cached is not None else None
        if entry is None or now - entry["t"] > BUSY_TTL and self._refresh_is_mine(key, field, now - entry["t"]):
            entry = {"t": now, "b": [[a.timestamp(), b.timestamp()] for a, b in super().busy(lo, hi)]}
            try:
                pipe = self.ctx.redis.pipeline(transaction=False)
                pipe.hset(key, field, json.dumps(entry))
                pipe.expire(key, BUSY_TTL * 3)
                pipe.execute()
            except Exception as exc:  # noqa: BLE001
                log.warning("free/busy cache not written: %s", type(exc).__name__)
        return [(datetime.fromtimestamp(a, timezone.utc), datetime.fromtimestamp(b, timezone.utc))
                for a, b in entry["b"]]

    def _refresh_is_mine(self, key: str, field: str, age: float) -> bool:
        """One request refreshes an expired entry; the others keep serving it for a few seconds more instead of
        all reading every calendar at once (the booking itself always reads live)."""
        if age > BUSY_STALE_MAX:
            return True
        try:
            return bool(self.ctx.redis.set(f"{key}:refresh:{field}", "1", nx=True, ex=10))
        except Exception:  # noqa: BLE001
            return True


def forget_busy(ctx: Context, owner_id: int) -> None:
    try:
        ctx.redis.delete(f"rg:busy:{owner_id}")
    except Exception as exc:  # noqa: BLE001
        log.warning("free/busy cache not invalidated for owner %s: %s", owner_id, type(exc).__name__)


# ------------------------------------------------------------------------------------------------ shared rendering


def _slots_view(session: Session, ctx: Context, owner: Owner, shape: SlotShape, *, client_tz: str, locale: str,
                now: datetime, start: datetime, exclude: Appointment | None = None,
                client_id: int | None = None) -> dict[str, Any]:
    calendars = CachedCalendars(session, owner.id, _factory(), ctx)
    slots = offer_slots(session, owner, shape, calendars, now=now, start=start, days=DAYS_SHOWN, exclude=exclude,
                        rules=calendars.rules)
    best = preferred_slots(slots, list(history_starts(session, client_id, now)), client_tz) if client_id else []
    days = days_for_client(slots, client_tz, locale, preferred=best)
    suggested = [(d.label, s) for d in days for s in d.slots if s.preferred]
    owner_zone = ZoneInfo(owner.timezone)
    local_start = start.astimezone(owner_zone).date()
    next_day = local_start + timedelta(days=DAYS_SHOWN)
    prev_day = local_start - timedelta(days=DAYS_SHOWN)
    return {
        "days": days,
        "suggested": suggested,
        "next_from": next_day.isoformat(),
        "prev_from": prev_day.isoformat() if start > now + timedelta(hours=1) else None,
    }


def _form_context(locale: str, client_tz: str) -> dict[str, Any]:
    zones = ZONES if client_tz in ZONES else (client_tz, *ZONES)
    return {"t": T[locale], "lang": locale, "zones": zones, "client_tz": client_tz, "channels": CHANNELS,
            "zone_label": T[locale]["in_zone"].format(zone=client_tz.replace("_", " "))}


def _parse_slot(raw: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else None


def _error_text(locale: str, exc: BookingError, business: str) -> str:
    t = T[locale]
    if isinstance(exc, SlotTaken):
        return t["taken"]
    if isinstance(exc, CalendarUnavailable):
        return t["calendar"].format(business=business)
    return t["not_bookable"].format(detail=str(exc))


def _status_for(exc: BookingError) -> int:
    return 409 if isinstance(exc, SlotTaken) else 503 if isinstance(exc, CalendarUnavailable) else 410


# ------------------------------------------------------------------------------------------------ booking page


def _load_type(session: Session, slug: str, type_slug: str) -> tuple[Owner, AppointmentType]:
    bs = session.scalar(select(BookingSettings).where(BookingSettings.slug == slug))
    if bs is None:
        abort(404)
    owner = session.get(Owner, bs.owner_id)
    atype = session.scalar(select(AppointmentType).where(AppointmentType.owner_id == bs.owner_id,
                                                         AppointmentType.slug == type_slug,
                                                         AppointmentType.active.is_(True)))
    if owner is None or atype is None:
        abort(404)
    return owner, atype


@bp.route("/book/<slug>/<type_slug>", methods=["GET", "POST"])
def book_page(slug: str, type_slug: str):  # type: ignore[no-untyped-def]
    ctx = get_context()
    now = ctx.clock.now()
    with ctx.sessions() as s:
        owner, atype = _load_type(s, slug, type_slug)
        locale = _locale(owner.locale)
        client_tz = _zone(owner.timezone)
        session["lang"] = locale
        t = T[locale]
        business = owner.business_name or owner.name
        form = {k: request.form.get(k, "").strip() for k in ("name", "email", "phone", "channel", "slot")}
        errors: dict[str, str] = {}
        notice, status = "", 200
        if request.method == "POST":
            starts_at = _parse_slot(form["slot"])
            if starts_at is None:
                errors["slot"] = t["need_slot"]
            if not form["name"]:
                errors["name"] = t["need_name"]
            if not EMAIL.match(form["email"]):
                errors["email"] = t["need_email"]
            if errors:
                notice, status = t["missing"], 400
            else:
                assert starts_at is not None
                details = ClientDetails(email=form["email"], name=form["name"], phone=form["phone"], locale=locale,
                                        channel=form["channel"] if form["channel"] in CHANNELS else "email",
                                        timezone=client_tz)
                try:
                    appt = book(ctx, owner_id=owner.id, type_id=atype.id, starts_at=starts_at, details=details,
                                factory=_factory())
                except BookingError as exc:
                    notice, status = _error_text(locale, exc, business), _status_for(exc)
                    form["slot"] = ""
                    if isinstance(exc, SlotTaken):
                        forget_busy(ctx, owner.id)
                else:
                    forget_busy(ctx, owner.id)
                    token = make_token(ctx.settings, "reschedule", client_id=appt.client_id, appointment_id=appt.id)
                    return redirect(url_for("booking.reschedule_page", token=token, done="booked", lang=locale))
        try:
            view = _slots_view(s, ctx, owner, shape_of(atype), client_tz=client_tz, locale=locale, now=now,
                               start=_start_day(owner.timezone, now))
        except CalendarUnavailable as exc:
            view = {"days": [], "suggested": [], "next_from": None, "prev_from": None}
            notice, status = _error_text(locale, exc, business), 503
        return render_template("booking/book.html", owner=owner, business=business, atype=atype, form=form,
                               errors=errors, notice=notice, notice_kind="error" if status >= 400 else "ok",
                               **view, **_form_context(locale, client_tz)), status


# ------------------------------------------------------------------------------------------------ reschedule page


def _policy_line(appt: Appointment, locale: str, now: datetime) -> str:
    """What happens to the deposit if the client moves now, in one sentence (``workflows.ledger`` decides)."""
    policy = Policy.from_dict(appt.policy)
    outcome = ledger.cancellation_outcome(policy, starts_at=appt.starts_at, when=now, event="move")
    t = T[locale]
    from babel.numbers import format_currency

    amount = format_currency(outcome.amount_cents / 100, policy.currency, locale=locale)
    if outcome.kind == "carry_over":
        return t["policy_keep"].format(amount=amount)
    if outcome.kind == "deposit_kept":
        return t["policy_lost"].format(amount=amount, hours=policy.window_hours)
    if outcome.kind == "fee":
        return t["policy_fee"].format(amount=amount, hours=policy.window_hours)
    late = ledger.is_late(policy, appt.starts_at, now)
    return t["policy_late"].format(hours=policy.window_hours) if late else t["policy_free"]


@bp.route("/reschedule/<token>", methods=["GET", "POST"])
def reschedule_page(token: str):  # type: ignore[no-untyped-def]
    ctx = get_context()
    now = ctx.clock.now()
    try:
        link = read_link(ctx.settings, token, expect_action="reschedule")
    except LinkError as exc:
        locale = _locale()
        return render_template("booking/invalid.html", message=str(exc), t=T[locale], lang=locale), 400
    with ctx.sessions() as s:
        appt = s.get(Appointment, link.appointment_id) if link.appointment_id else None
        if appt is None or appt.client_id != link.client_id:
            abort(404)
        client = appt.client  # loaded with the appointment
        owner = appt.owner
        locale = _locale(client.locale, owner.locale)
        session["lang"] = locale
        client_tz = _zone(client.timezone or owner.timezone)
        t = T[locale]
        business = owner.business_name or owner.name
        notice, status = "", 200
        done = request.args.get("done", "")
        if done in ("booked", "moved"):
            notice = t[done]
        shape = shape_for_appointment(s, appt)
        if appt.status != "scheduled" and not done:
            notice = t["cancelled"]
        if request.method == "POST":
            starts_at = _parse_slot(request.form.get("slot", ""))
            if starts_at is None:
                notice, status = t["need_slot"], 400
            else:
                try:
                    if appt.status == "scheduled":
                        move(ctx, appointment_id=appt.id, starts_at=starts_at, factory=_factory())
                        new_token = token
                    else:
                        new = _rebook(ctx, s, appt, client, starts_at, locale)
                        new_token = make_token(ctx.settings, "reschedule", client_id=client.id,
                                               appointment_id=new.id)
                except BookingError as exc:
                    notice, status = _error_text(locale, exc, business), _status_for(exc)
                    if isinstance(exc, SlotTaken):
                        forget_busy(ctx, owner.id)
                else:
                    forget_busy(ctx, owner.id)
                    return redirect(url_for("booking.reschedule_page", token=new_token, done="moved", lang=locale))
        try:
            view = _slots_view(s, ctx, owner, shape, client_tz=client_tz, locale=locale, now=now,
                               start=_start_day(owner.timezone, now),
                               exclude=appt if appt.status == "scheduled" else None, client_id=client.id)
        except CalendarUnavailable as exc:
            view = {"days": [], "suggested": [], "next_from": None, "prev_from": None}
            notice, status = _error_text(locale, exc, business), 503
        return render_template(
            "booking/reschedule.html", owner=owner, business=business, appt=appt, client=client, token=token,
            when=format_when(appt.starts_at, client_tz, locale), policy_line=_policy_line(appt, locale, now),
            notice=notice, notice_kind="error" if status >= 400 else "ok", done=done,
            **view, **_form_context(locale, client_tz)), status


def _rebook(ctx: Context, session: Session, appt: Appointment, client: Client, starts_at: datetime,
            locale: str) -> Appointment:
    """The reschedule link of a cancelled appointment books a new one of the same length (the deposit carried
    over from the cancellation is applied by ``workflows.lifecycle``)."""
    minutes = int((appt.ends_at - appt.starts_at).total_seconds() // 60)
    atype = session.scalar(select(AppointmentType).where(
        AppointmentType.owner_id == appt.owner_id, AppointmentType.active.is_(True),
        AppointmentType.duration_minutes == minutes).order_by(AppointmentType.id))
    if atype is None:
        raise NotBookable("the owner has no bookable appointment of this length; reply to the email instead")
    return book(ctx, owner_id=appt.owner_id, type_id=atype.id, starts_at=starts_at, factory=_factory(),
                details=ClientDetails(email=client.email, name=client.name, phone=client.phone, locale=locale,
                                      channel=client.preferred_channel, timezone=client.timezone))
