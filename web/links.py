"""One-click link pages: ``/l/<token>`` for clients (confirm, cancel + why, reschedule, running late, unsubscribe)
and the owner (arrived, not yet, no-show, waive), and ``/l/u/<thread token>`` for RFC 8058 one-click unsubscribe.

GET never changes anything: mail security scanners open every link in a message, and a scanner must not cancel an
appointment. GET shows one button; its POST acts. Each form carries a field bound to the link token (an HMAC), which
is the CSRF protection here: clients have no session, and the token in the URL is itself the capability. Acting
twice is harmless: answers are recorded with the link's digest as dedup key (``record_answer``), and the owner's
actions are idempotent, so a second click shows the same result page. Pages are in the client's language (the
owner's for owner actions). The web-app engineer restyles ``web/templates/links/``.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from channels.links import LinkError, LinkPayload, read_link, token_digest
from channels.render import format_when, pick_locale
from channels.threads import find_message_ids
from reagenda.settings import Settings
from store.models import Appointment, Client, Message, Owner
from web.context import get_context

log = logging.getLogger(__name__)
bp = Blueprint("links", __name__, url_prefix="/l")

REASONS = ("price", "service", "convenience", "availability", "expectations", "emergency", "other")
CONTACT = ("email", "phone", "sms", "whatsapp")

T: dict[str, dict[str, str]] = {
    "es": {
        "invalid": "Este enlace no es válido", "expired": "Este enlace ha caducado",
        "invalid_body": "Puede que se haya copiado incompleto. Responde al correo y te ayudamos.",
        "confirm_q": "¿Confirmas tu cita?", "confirm_btn": "Confirmar", "confirm_done": "¡Cita confirmada!",
        "cancel_q": "¿Quieres cancelar tu cita?", "cancel_btn": "Cancelar la cita",
        "cancel_done": "Tu cita está cancelada", "reason_q": "¿Nos cuentas por qué? (opcional)",
        "contact_q": "¿Cómo prefieres que te contactemos?", "send": "Enviar",
        "reason_done": "Gracias por contárnoslo", "reschedule_q": "¿Quieres cambiar la cita a otro momento?",
        "reschedule_btn": "Pedir otra hora", "reschedule_done": "Te escribiremos para buscar otra hora",
        "late_q": "¿Vas a llegar tarde?", "late_btn": "Aviso de que llego tarde",
        "late_done": "Avisado: sabemos que llegas un poco tarde", "unsubscribe_q": "¿Dejar de recibir mensajes?",
        "unsubscribe_btn": "Darme de baja", "unsubscribe_done": "Ya no recibirás más mensajes por este medio",
        "arrived_q": "¿Ha llegado el cliente?", "arrived_btn": "Ha llegado", "arrived_done": "Marcado: ha llegado",
        "not_yet_q": "¿El cliente aún no ha llegado?", "not_yet_btn": "Aún no",
        "not_yet_done": "Le hemos recordado la cita y esperamos", "no_show_q": "¿Marcar como no presentado?",
        "no_show_btn": "No se ha presentado", "no_show_done": "Marcado como no presentado",
        "waive_q": "¿Perdonar el cargo de esta cita?", "waive_btn": "Perdonar", "waive_reason": "Motivo",
        "waive_done": "Cargo perdonado", "waive_none": "No hay nada que perdonar en esta cita",
        "invoice_q": "Tu factura", "invoice_body": "Responde a este correo si tienes dudas sobre la factura.",
        "gone": "Esta cita ya no existe", "cancelled_already": "Esta cita ya estaba cancelada",
        "reasons": "Precio|Servicio|Comodidad|Disponibilidad|Expectativas|Emergencia|Otro",
        "contacts": "Correo|Teléfono|SMS|WhatsApp", "appointment": "Cita",
    },
    "en": {
        "invalid": "This link is not valid", "expired": "This link has expired",
        "invalid_body": "It may have been copied incompletely. Reply to the email and we will help.",
        "confirm_q": "Confirm your appointment?", "confirm_btn": "Confirm", "confirm_done": "Appointment confirmed!",
        "cancel_q": "Cancel your appointment?", "cancel_btn": "Cancel the appointment",
        "cancel_done": "Your appointment is cancelled", "reason_q": "Would you tell us why? (optional)",
        "contact_q": "How would you like us to contact you?", "send": "Send",
        "reason_done": "Thank you for telling us", "reschedule_q": "Move your appointment to another time?",
        "reschedule_btn": "Ask for another time", "reschedule_done": "We will write to you to find another time",
        "late_q": "Running late?", "late_btn": "Tell them I'm running late",
        "late_done": "Done: they know you are running a little late", "unsubscribe_q": "Stop receiving messages?",
        "unsubscribe_btn": "Unsubscribe", "unsubscribe_done": "You will not receive more messages this way",
        "arrived_q": "Has the client arrived?", "arrived_btn": "Arrived", "arrived_done": "Marked: arrived",
        "not_yet_q": "The client has not arrived yet?", "not_yet_btn": "Not yet",
        "not_yet_done": "We reminded them and are waiting", "no_show_q": "Mark as a no-show?",
        "no_show_btn": "No-show", "no_show_done": "Marked as a no-show",
        "waive_q": "Waive the charge for this appointment?", "waive_btn": "Waive", "waive_reason": "Reason",
        "waive_done": "Charge waived", "waive_none": "There is nothing to waive for this appointment",
        "invoice_q": "Your invoice", "invoice_body": "Reply to this email if you have questions about the invoice.",
        "gone": "This appointment no longer exists", "cancelled_already": "This appointment was already cancelled",
        "reasons": "Price|Service|Convenience|Availability|Expectations|Emergency|Other",
        "contacts": "Email|Phone|SMS|WhatsApp", "appointment": "Appointment",
    },
}


def _settings() -> Settings:
    return current_app.extensions["reagenda.settings"]


def form_key(settings: Settings, token: str) -> str:
    """The hidden field bound to this link: proves the POST came from the page we served for this token."""
    return hmac.new(settings.secret_key.encode(), f"link-form:{token_digest(token)}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def _page(locale: str, title: str, *, status: int = 200, body: str = "", when: str = "", form: dict[str, Any] | None
          = None) -> tuple[str, int]:
    return render_template("links/page.html", lang=locale, t=T[locale], title=title, body=body, when=when,
                           form=form), status


def _invalid(locale: str, exc: LinkError) -> tuple[str, int]:
    from channels.links import LinkExpired

    expired = isinstance(exc, LinkExpired)
    log.info("link refused: %s", type(exc).__name__)
    return _page(locale, T[locale]["expired" if expired else "invalid"], status=410 if expired else 400,
                 body=T[locale]["invalid_body"])


def _lang() -> str:
    return pick_locale(request.accept_languages.best_match(["es", "en"]))


@bp.route("/<token>", methods=["GET", "POST"])
def click(token: str) -> tuple[str, int]:
    settings = _settings()
    ctx = get_context()
    now = ctx.clock.now()
    try:
        payload = read_link(settings, token, now=now)
    except LinkError as exc:
        return _invalid(_lang(), exc)
    with ctx.session() as session:
        client = session.get(Client, payload.client_id)
        appt = session.get(Appointment, payload.appointment_id) if payload.appointment_id else None
        if client is None or (appt is not None and appt.client_id != client.id):
            return _invalid(_lang(), LinkError("unknown client"))
        owner = session.get(Owner, client.owner_id)
        assert owner is not None
        locale = pick_locale(owner.locale) if payload.for_owner else pick_locale(client.locale, owner.locale)
        t = T[locale]
        when = format_when(appt.starts_at, client.timezone or owner.timezone if not payload.for_owner
                           else owner.timezone, locale) if appt is not None else ""
        if payload.appointment_id and appt is None:
            return _page(locale, t["gone"], status=404)
        fields = {"key": form_key(settings, token)}
        if request.method == "GET" and payload.action == "reschedule" and appt is not None:
            # Every flow's "reschedule" link lands on the live slot page (web/booking.py), which acts only when
            # the client picks a time, so a mail scanner prefetching the link changes nothing.
            return redirect(url_for("booking.reschedule_page", token=token))  # type: ignore[return-value]
        if request.method == "GET":
            return _show(payload, locale, when, fields, session, appt)
        if not hmac.compare_digest(request.form.get("key", ""), fields["key"]):
            log.warning("link form with a wrong key refused")
            return _page(locale, t["invalid"], status=400, body=t["invalid_body"])
        return _act(session, settings, payload, token, client, appt, locale, when, now)


def _show(payload: LinkPayload, locale: str, when: str, fields: dict[str, str], session: Session,
          appt: Appointment | None) -> tuple[str, int]:
    t = T[locale]
    action = payload.action
    if action == "invoice":
        return _page(locale, t["invoice_q"], body=t["invoice_body"], when=when)
    form: dict[str, Any] = {"key": fields["key"], "button": t.get(f"{action}_btn", t["send"])}
    if action in ("reason", "cancel"):
        form.update(reasons=list(zip(REASONS, t["reasons"].split("|"))),
                    contacts=list(zip(CONTACT, t["contacts"].split("|"))), reason_label=t["reason_q"],
                    contact_label=t["contact_q"])
    if action == "waive":
        form.update(waive_label=t["waive_reason"])
    title = t["reason_q"] if action == "reason" else t.get(f"{action}_q", t["send"])
    return _page(locale, title, when=when, form=form)


def _act(session: Session, settings: Settings, payload: LinkPayload, token: str, client: Client,
         appt: Appointment | None, locale: str, when: str, now: Any) -> tuple[str, int]:
    t = T[locale]
    action = payload.action
    digest = token_digest(token)
    if action in ("arrived", "not_yet", "no_show"):
        from workflows import noshow

        if appt is None:
            return _page(locale, t["gone"], status=404)
        getattr(noshow, f"mark_{action}")(session, appt, now)
        return _page(locale, t[f"{action}_done"], when=when)
    if action == "waive":
        from workflows import ledger

        if appt is None:
            return _page(locale, t["gone"], status=404)
        reason = (request.form.get("reason") or "").strip()[:500] or "waived by the owner (one click)"
        written = ledger.waive(session, appt, reason, now)
        already = not written
        return _page(locale, t["waive_done"] if not already else t["waive_none"], when=when)
    from workflows.answers import record_answer

    reason = request.form.get("reason", "")
    contact = request.form.get("contact", "")
    note = request.form.get("note", "").strip()[:2000]
    if action in ("cancel", "reason") and (reason or contact or note):
        text = "; ".join(x for x in (f"reason: {reason}" if reason in REASONS else "",
                                     f"contact: {contact}" if contact in CONTACT else "", note) if x)
        record_answer(session, client, channel="link", text=text, intent="reason", now=now, appointment=appt,
                      dedup_key=f"link:{digest}:reason")
        if action == "reason":
            return _page(locale, t["reason_done"], when=when)
    intent = {"confirm": "confirm", "cancel": "cancel", "reschedule": "reschedule", "late": "running_late",
              "unsubscribe": "unsubscribe"}.get(action)
    if intent is None:
        return _page(locale, t["invalid"], status=400)
    if intent == "confirm" and appt is not None and appt.status == "cancelled":
        return _page(locale, t["cancelled_already"], when=when)
    record_answer(session, client, channel="link", text=f"({action} link)", intent=intent, now=now,
                  appointment=appt, dedup_key=f"link:{digest}")
    return _page(locale, t[f"{action}_done"], when=when)


@bp.route("/u/<thread>", methods=["GET", "POST"])
def one_click_unsubscribe(thread: str) -> tuple[str, int]:
    """RFC 8058: mail clients POST ``List-Unsubscribe=One-Click`` here; a person opening it gets the button."""
    settings = _settings()
    ctx = get_context()
    ids = find_message_ids(settings, thread)
    if not ids:
        return _invalid(_lang(), LinkError("bad thread token"))
    with ctx.session() as session:
        msg = session.get(Message, ids[0])
        client = session.get(Client, msg.client_id) if msg and msg.client_id else None
        if client is None:
            return _invalid(_lang(), LinkError("unknown message"))
        owner = session.get(Owner, client.owner_id)
        locale = pick_locale(client.locale, owner.locale if owner else None)
        key = form_key(settings, thread)
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        if request.method == "GET":
            return _page(locale, T[locale]["unsubscribe_q"],
                         form={"key": key, "button": T[locale]["unsubscribe_btn"]})
        if not one_click and not hmac.compare_digest(request.form.get("key", ""), key):
            return _page(locale, T[locale]["invalid"], status=400)
        from workflows.answers import record_answer

        record_answer(session, client, channel="email", text="(List-Unsubscribe)", intent="unsubscribe",
                      now=ctx.clock.now(), dedup_key=f"unsub:{client.id}:{ids[0]}")
        return _page(locale, T[locale]["unsubscribe_done"])


def _exempt_from_csrf() -> None:
    """These forms carry their own token-bound field (see ``form_key``); clients have no session cookie."""
    try:
        from web import csrf
    except ImportError:
        return
    csrf.exempt(bp)


_exempt_from_csrf()
