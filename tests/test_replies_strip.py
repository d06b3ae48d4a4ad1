"""Stripping quoted history and signatures; where mail-parser-reply fails (Gmail Spanish) and we do not."""
from __future__ import annotations

from email.message import EmailMessage

import pytest
from mailparser_reply import EmailReplyParser

from replies.autoreply import detect
from replies.intent import classify
from replies.strip import strip_reply

GMAIL_ES = """Perfecto, ahí estaré.

El jue, 12 mar 2026 a las 10:03, Estudio Lumen <citas@lumen.es> escribió:
> Hola Marta, te recordamos tu cita del jueves.
> Si no puedes venir, cancela aquí.
"""
GMAIL_ES_WRAPPED = """Llego 10 min tarde

El jue, 12 mar 2026 a las 10:03, Estudio Lumen Consultoría Integral <
citas@lumen.es> escribió:

> Hola
"""


@pytest.mark.parametrize("raw", [GMAIL_ES, GMAIL_ES_WRAPPED])
def test_library_leaves_gmail_spanish_history_in_and_we_remove_it(raw):  # type: ignore[no-untyped-def]
    lib = EmailReplyParser(languages=["es", "en"]).parse_reply(text=raw)
    assert "escribió" in lib, "mail-parser-reply now strips Gmail Spanish: the own pass may be simplified"
    ours = strip_reply(raw)
    assert "escribió" not in ours and ">" not in ours and "cancela" not in ours
    assert ours in ("Perfecto, ahí estaré.", "Llego 10 min tarde")


@pytest.mark.parametrize("raw, expected", [
    ("Ok, see you then.\n\nOn Thu, Mar 12, 2026 at 10:03 AM Estudio Lumen <citas@lumen.es> wrote:\n> Hi\n",
     "Ok, see you then."),
    ("Confirmo\n\nEnviado desde mi iPhone\n\nDe: Estudio Lumen <citas@lumen.es>\nEnviado: jueves, 12 de marzo "
     "de 2026 10:03\nPara: Marta\nAsunto: Recordatorio\n\nSi no puedes, cancela.\n", "Confirmo"),
    ("Yes, confirmed\n\nSent from my Android\n", "Yes, confirmed"),
    ("Please cancel.\n\n-----Original Message-----\nFrom: Lumen <c@l.es>\nSent: Thursday\nTo: me\n"
     "Subject: confirm here\n", "Please cancel."),
    ("De acuerdo\n\n> El 12 mar 2026, a las 10:03, Estudio Lumen <citas@lumen.es> escribió:\n>\n> Hola\n",
     "De acuerdo"),
    ("Vale!\n\nEl 12/3/2026, a las 10:03, Estudio Lumen <citas@lumen.es> escribio:\n\nHola\n", "Vale!"),
    ("Gracias\n-- \nMarta López\nTel 600 000 000\n", "Gracias"),
    ("Nos vemos\n\nObtener Outlook para Android\n", "Nos vemos"),
    ("De verdad que no puedo ir.\nDe momento nada más.", "De verdad que no puedo ir.\nDe momento nada más."),
])
def test_strip_variants(raw, expected):  # type: ignore[no-untyped-def]
    assert strip_reply(raw) == expected


def test_the_quoted_message_never_decides_the_intent():
    """Our own message says "cancela aquí"; the client's "Perfecto, ahí estaré" must still be a confirm."""
    assert classify(strip_reply(GMAIL_ES)).name == "confirm"


def _mail(**headers: str) -> EmailMessage:
    m = EmailMessage()
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content("hola")
    return m


@pytest.mark.parametrize("headers, text", [
    ({"Auto_Submitted": "auto-replied"}, "Confirmo"),
    ({"X_Autoreply": "yes"}, ""),
    ({"Precedence": "auto_reply"}, ""),
    ({"Precedence": "bulk"}, ""),
    ({"Subject": "Respuesta automática: Recordatorio"}, ""),
    ({"Subject": "Fuera de la oficina"}, ""),
    ({"Subject": "Out of Office: Reminder"}, ""),
    ({"Subject": "Re: Recordatorio"}, "Estoy fuera de la oficina hasta el lunes 16."),
    ({"Subject": "Re: Reminder"}, "I am currently out of the office with limited access to email."),
])
def test_auto_replies_are_recognised(headers, text):  # type: ignore[no-untyped-def]
    verdict = detect(_mail(**headers), text=text)
    assert verdict.is_auto and verdict.reason


@pytest.mark.parametrize("subject, text", [
    ("Re: Recordatorio", "Confirmo, gracias"),
    ("Re: Ausencia mañana", "No podré ir"),
    ("Re: Reminder", "I'll be out of town, can we move it?"),
])
def test_real_replies_are_not_auto(subject, text):  # type: ignore[no-untyped-def]
    assert not detect(_mail(Subject=subject, Auto_Submitted="no"), text=text).is_auto
