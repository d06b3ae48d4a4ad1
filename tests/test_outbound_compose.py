"""What the engine hands the channel is the full, well-formed message: opt-out link and ICS invitation included,
and a refused address is marked for that client without failing the channel for anyone else."""
from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy

from sqlalchemy import select

from store.models import Client, Message, Step
from tests.factories import make_appointment, make_owner


def _outbox_mail(stack, kind):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        msg = s.scalar(select(Message).where(Message.kind == kind, Message.status == "sent"))
        assert msg is not None, f"no sent {kind} message"
        path = stack.settings.outbox_dir / f"{msg.idempotency_key}.eml"
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def test_confirmation_request_carries_unsubscribe_and_an_ics_invitation(stack):
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=5))
    stack.run_due()
    mail = _outbox_mail(stack, "confirm_request")
    assert mail["List-Unsubscribe"].startswith("<http://reagenda.test/l/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ics = [part for part in mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    assert len(ics) == 1 and ics[0].get_param("method") == "REQUEST"
    body = re.sub(r"\r?\n[ \t]", "", ics[0].get_content())  # unfold RFC 5545 long lines
    assert "BEGIN:VEVENT" in body and "SUMMARY:Sesión" in body and "marta@example.com" in body.lower()


def test_a_refused_address_is_marked_and_the_channel_keeps_working(stack, monkeypatch):
    from dataclasses import replace

    from tests.fakes.sendgrid import RunningFake

    now = stack.clock.now()
    with RunningFake() as fake:
        fake.reject.add("bounce@example.com")
        monkeypatch.setattr(stack.ctx, "settings", replace(stack.settings, email_backend="sendgrid",
                                                           sendgrid_api_key="SG.test", sendgrid_host=fake.url))
        with stack.session() as s:
            owner = make_owner(s, now)
            make_appointment(s, owner, now, now + timedelta(days=5), client_email="bounce@example.com")
            make_appointment(s, owner, now, now + timedelta(days=6), client_email="fine@example.com")
        stack.run_due()
    with stack.session() as s:
        bounced = s.scalar(select(Client).where(Client.email == "bounce@example.com"))
        assert bounced.email_status == "bounced" and "email" in bounced.opted_out
        failed = s.scalars(select(Step).where(Step.state == "failed")).all()
        assert failed and all(f.outcome.startswith("address refused") for f in failed)
        sent = set(s.scalars(select(Message.recipient).where(Message.status == "sent")))
        assert sent == {"fine@example.com"}


def test_the_owners_own_text_is_what_the_client_receives(stack):
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        owner.preferences = {"texts": {"es": {"confirm_request": "Subject: ¿Nos vemos, {{ client_name }}?\n\n"
                                                                  "Hola {{ client_name }}, te esperamos.\n"}}}
        make_appointment(s, owner, now, now + timedelta(days=5))
    stack.run_due()
    with stack.session() as s:
        msg = s.scalar(select(Message).where(Message.kind == "confirm_request"))
        assert msg.subject == "¿Nos vemos, Marta?" and msg.body_text.startswith("Hola Marta, te esperamos.")


def test_a_broken_owner_text_falls_back_to_ours_and_still_sends(stack, caplog):
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        owner.preferences = {"texts": {"es": {"confirm_request": "Subject: Hola {{ no_such_field }}\n\nx\n"}}}
        make_appointment(s, owner, now, now + timedelta(days=5))
    stack.run_due()
    with stack.session() as s:
        msg = s.scalar(select(Message).where(Message.kind == "confirm_request"))
        assert msg.status == "sent" and "no_such_field" not in msg.subject
    assert "owner text for es/confirm_request does not render" in caplog.text


def test_a_client_who_prefers_whatsapp_gets_it_and_others_keep_email(stack, monkeypatch):
    from dataclasses import replace

    from tests.fakes.twilio import RunningTwilio

    sid, token = "AC" + "2" * 32, "twilio-token-secret"
    now = stack.clock.now()
    with RunningTwilio(sid, token) as fake:
        monkeypatch.setattr(stack.ctx, "settings", replace(
            stack.settings, twilio_account_sid=sid, twilio_auth_token=token, twilio_from="+34910000000",
            twilio_whatsapp_from="+34910000001", twilio_host=fake.url))
        with stack.session() as s:
            owner = make_owner(s, now)
            wa = make_appointment(s, owner, now, now + timedelta(days=5), client_email="wa@example.com")
            wa.client.preferred_channel, wa.client.phone = "whatsapp", "+34600111222"
            no_phone = make_appointment(s, owner, now, now + timedelta(days=6), client_email="nophone@example.com")
            no_phone.client.preferred_channel = "sms"  # no number: email it is
        stack.run_due()
    assert [m["to"] for m in fake.sent] == ["whatsapp:+34600111222"]
    assert "Baja: http://reagenda.test/l/" in fake.sent[0]["body"]
    with stack.session() as s:
        rows = {m.recipient: m.channel for m in s.scalars(select(Message).where(Message.status == "sent"))}
    assert rows == {"+34600111222": "whatsapp", "nophone@example.com": "email"}


def test_mail_comes_from_the_owners_sender_name(stack):
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=5))
    stack.run_due()
    assert _outbox_mail(stack, "confirm_request")["From"] == "Estudio Lumen <citas@localhost>"

    with stack.session() as s:
        owner = make_owner(s, now, email="otro@example.com")
        owner.preferences = {"sender_name": "Ana, de Lumen"}
        make_appointment(s, owner, now, now + timedelta(days=6), client_email="otra@example.com")
    stack.run_due()
    with stack.session() as s:
        msg = s.scalar(select(Message).where(Message.recipient == "otra@example.com",
                                             Message.kind == "confirm_request"))
        path = stack.settings.outbox_dir / f"{msg.idempotency_key}.eml"
    mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert mail["From"].addresses[0].display_name == "Ana, de Lumen"
    assert mail["From"].addresses[0].addr_spec == "citas@localhost"
