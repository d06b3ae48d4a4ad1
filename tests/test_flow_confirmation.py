"""Flow 1 (confirmation request, one nudge + owner note) and flow 8 (answers stop sequences), end to end on both
backends with a real RQ worker."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.models import Appointment, Client, Reply
from tests import flowkit as fk
from workflows.answers import record_answer


def test_new_appointment_gets_a_confirmation_request_with_links_and_policy(stack):
    _, client_id, appt_id = fk.setup(stack, policy={"fee_cents": 3000})
    assert stack.run_due() >= 1
    [msg] = fk.sent(stack, kind="confirm_request")
    assert msg.recipient == "marta@example.com"
    assert "Confirma tu cita" in msg.subject and "7 de marzo" in msg.subject and "10:00" in msg.subject
    body = msg.body_text
    assert "meet.google.com/abc-defg-hij" in body
    assert "48 h" in body and "30,00" in body  # the policy in one sentence, money in the client's locale
    for label in ("Confirmar:", "Reagendar:", "Cancelar:"):
        line = next(line for line in body.splitlines() if line.startswith(label))
        assert "http://reagenda.test/l/" in line
    assert "/l/" in body.splitlines()[-1]  # the unsubscribe link closes every client message


def test_unconfirmed_24h_before_one_nudge_and_a_note_to_the_owner(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    starts = fk.appointment(stack, appt_id).starts_at
    fk.run_until(stack, starts - timedelta(hours=23), step=timedelta(hours=6))
    assert len(fk.sent(stack, kind="confirm_nudge")) == 1
    [note] = fk.sent(stack, kind="owner_unconfirmed")
    assert note.recipient == fk.owner_email(stack, owner_id)
    assert "Marta" in note.subject
    fk.run_until(stack, starts - timedelta(hours=3), step=timedelta(hours=6))
    assert len(fk.sent(stack, kind="confirm_nudge")) == 1, "one nudge, never more"


def test_confirming_stops_the_nudge_but_not_the_reminders(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    stack.run_due()
    with stack.session() as s:
        client = s.get(Client, client_id)
        reply = record_answer(s, client, channel="link", text="confirm", intent="confirm", now=stack.clock.now())
        assert reply.needs_owner is False and reply.appointment_id == appt_id
    a = fk.appointment(stack, appt_id)
    assert a.confirmation == "confirmed" and a.confirmed_at == stack.clock.now()
    fk.run_until(stack, a.starts_at - timedelta(minutes=30), step=timedelta(hours=6))
    assert fk.sent(stack, kind="confirm_nudge") == [] and fk.sent(stack, kind="owner_unconfirmed") == []
    assert len(fk.sent(stack, kind="reminder")) == 2  # 48 h and 2 h


def test_any_reply_stops_every_sequence_and_other_intents_reach_the_owner(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    stack.run_due()
    with stack.session() as s:
        client = s.get(Client, client_id)
        reply = record_answer(s, client, channel="email", text="¿Podemos hablar del precio?", intent="other",
                              now=stack.clock.now(), dedup_key="msg-1")
        again = record_answer(s, client, channel="email", text="¿Podemos hablar del precio?", intent="other",
                              now=stack.clock.now(), dedup_key="msg-1")
        assert again.id == reply.id
        assert reply.needs_owner
    stack.run_due()
    [note] = fk.sent(stack, kind="owner_reply")
    assert note.recipient == fk.owner_email(stack, owner_id) and "precio" in note.body_text
    st = fk.steps(stack, appt_id)
    assert st["confirm_nudge"].state == "cancelled" and "answered" in st["confirm_nudge"].outcome
    assert st["reminder_48h"].state == "pending"


def test_cancel_intent_cancels_the_appointment(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    with stack.session() as s:
        record_answer(s, s.get(Client, client_id), channel="link", text="cancel", intent="cancel",
                      now=stack.clock.now(), appointment=s.get(Appointment, appt_id))
    a = fk.appointment(stack, appt_id)
    assert a.status == "cancelled" and a.cancelled_by == "client" and not a.late_cancel
    stack.run_due()
    assert "cancel_thanks" in fk.kinds(stack)


def test_auto_replies_do_not_stop_anything(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    with stack.session() as s:
        record_answer(s, s.get(Client, client_id), channel="email", text="Out of office", intent="auto_reply",
                      now=stack.clock.now())
        assert s.scalar(select(Reply.auto_reply)) is True
    assert fk.steps(stack, appt_id)["confirm_nudge"].state == "pending"
