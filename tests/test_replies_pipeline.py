"""The inbound pipeline on a real database: HTML-only and Latin-1 mail, unknown senders, automatic mail."""
from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import func, select

from replies.pipeline import process_raw
from store.models import Client, InboundEvent, Reply, Step
from tests.factories import make_appointment, make_owner


def _setup(stack):  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=2))


def _process(stack, mail: EmailMessage):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return process_raw(s, stack.settings, bytes(mail), source="test", now=stack.clock.now())


def _mail(sender: str, mid: str, **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "lumen@example.com"
    m["Subject"] = "Re: Recordatorio"
    m["Message-ID"] = mid
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    return m


def test_html_only_gmail_reply_and_latin1_text(sqlite_stack):  # type: ignore[no-untyped-def]
    _setup(sqlite_stack)
    html = _mail("Marta <marta@example.com>", "<h1@mail.test>")
    html.set_content('<div dir="ltr">No podr&eacute; ir, lo siento</div><br><div class="gmail_quote">'
                     '<div>El lun, 2 mar 2026 a las 10:01, Estudio Lumen escribió:</div><blockquote>Confirma aquí'
                     '</blockquote></div>', subtype="html")
    assert _process(sqlite_stack, html).status == "reply"
    latin = _mail("Marta <marta@example.com>", "<l1@mail.test>")
    latin.set_content("Sí, allí estaré", charset="iso-8859-1", cte="quoted-printable")
    assert _process(sqlite_stack, latin).status == "reply"
    with sqlite_stack.session() as s:
        texts = [(r.intent, r.text) for r in s.scalars(select(Reply).order_by(Reply.id))]
    assert texts == [("cancel", "No podré ir, lo siento"), ("confirm", "Sí, allí estaré")]


def test_unknown_sender_goes_to_the_owner_automatic_mail_from_nobody_creates_nobody(sqlite_stack):  # type: ignore
    _setup(sqlite_stack)
    stranger = _mail("Pedro <pedro@example.net>", "<p1@mail.test>")
    stranger.set_content("Hola, quiero cancelar mi cita")
    outcome = _process(sqlite_stack, stranger)
    assert outcome.status == "reply" and outcome.analysis.match.how == "owner_address"
    newsletter = _mail("news@shop.example", "<n1@mail.test>", Precedence="bulk")
    newsletter.set_content("Ofertas de la semana")
    assert _process(sqlite_stack, newsletter).status == "auto_reply"
    with sqlite_stack.session() as s:
        pedro = s.scalar(select(Client).where(Client.email == "pedro@example.net"))
        assert pedro is not None
        reply = s.scalar(select(Reply).where(Reply.client_id == pedro.id))
        assert reply.intent == "other" and reply.needs_owner, "an unknown sender never acts by itself"
        assert s.scalar(select(func.count()).select_from(Step).where(Step.kind == "owner_handoff")) == 1
        assert s.scalar(select(Client).where(Client.email == "news@shop.example")) is None
        assert s.scalar(select(InboundEvent.status).where(InboundEvent.sender == "news@shop.example")) == "auto_reply"
