"""Flow 5 (after a cancellation: thanks + why + reschedule, one follow-up with the owner's offer if not rebooked,
one re-engagement after the business cycle, never more) and the client limits (daily cap defers, opt-out)."""
from __future__ import annotations

from datetime import timedelta

from store.models import Appointment, Client, Owner
from tests import flowkit as fk
from tests.factories import make_appointment
from workflows.lifecycle import record_cancel


def _cancel(stack, appt_id, by="client"):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        record_cancel(s, s.get(Appointment, appt_id), now=stack.clock.now(), by=by)


def test_thanks_then_one_follow_up_with_the_offer_then_one_reengagement_never_more(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5),
                                     policy={"offer_text": "Un 10% de descuento en tu próxima sesión.",
                                             "business_cycle_months": 1})
    stack.run_due()
    _cancel(stack, appt_id)
    cancelled_at = stack.clock.now()
    stack.run_due()
    [thanks] = fk.sent(stack, kind="cancel_thanks")
    assert "Gracias" in thanks.subject and "precio" in thanks.body_text.lower()
    fk.run_until(stack, cancelled_at + timedelta(days=6, hours=23))
    assert fk.sent(stack, kind="cancel_followup") == []
    fk.run_until(stack, cancelled_at + timedelta(days=7, hours=1))
    [follow] = fk.sent(stack, kind="cancel_followup")
    assert "10% de descuento" in follow.body_text
    fk.run_until(stack, cancelled_at + timedelta(days=400))
    assert len(fk.sent(stack, kind="reengage")) == 1
    assert fk.kinds(stack).count("cancel_followup") == 1
    assert fk.sent(stack, kind="reengage")[0].created_at.month == 4  # one month after 2 March


def test_rebooking_stops_the_follow_up_and_the_reengagement(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5))
    _cancel(stack, appt_id)
    stack.clock.advance(timedelta(days=2))
    with stack.session() as s:
        make_appointment(s, s.get(Owner, owner_id), stack.clock.now(), stack.clock.now() + timedelta(days=3),
                         uid="evt-again")
    fk.run_until(stack, stack.clock.now() + timedelta(days=200))
    assert fk.sent(stack, kind="cancel_followup") == [] and fk.sent(stack, kind="reengage") == []
    st = fk.steps(stack, appt_id)
    assert st["cancel_followup"].outcome == "the client has booked again"


def test_daily_limit_defers_and_never_drops(stack):
    """Three new appointments for one client on one day: two confirmation requests go today, the third tomorrow
    morning in the client's zone, with the reason visible on the step."""
    owner_id, client_id, first = fk.setup(stack, starts_in=timedelta(days=10))
    now = stack.clock.now()
    with stack.session() as s:
        owner = s.get(Owner, owner_id)
        make_appointment(s, owner, now, now + timedelta(days=11), uid="evt-b")
        third = make_appointment(s, owner, now, now + timedelta(days=12), uid="evt-c").id
    stack.run_due()
    assert len(fk.sent(stack, kind="confirm_request")) == 2
    step = fk.steps(stack, third)["confirm_request"]
    assert step.state == "pending" and "daily limit of 2" in step.outcome
    assert step.due_at == (now + timedelta(days=1)).replace(hour=7, minute=1)  # 08:01 Madrid
    fk.run_until(stack, step.due_at)
    assert len(fk.sent(stack, kind="confirm_request")) == 3


def test_quiet_hours_defer_until_the_morning_and_opted_out_clients_get_nothing(stack):
    stack.clock.set(stack.clock.now().replace(hour=22))  # 23:00 in Madrid
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=4))
    stack.run_due()
    assert fk.sent(stack, kind="confirm_request") == []
    assert "quiet hours" in fk.steps(stack, appt_id)["confirm_request"].outcome
    with stack.session() as s:
        s.get(Client, client_id).opted_out = ["email"]
    fk.run_until(stack, stack.clock.now() + timedelta(days=5))
    assert fk.sent(stack, recipient="marta@example.com") == []
    st = fk.steps(stack, appt_id)
    assert st["confirm_request"].outcome == "client opted out of email"
    assert fk.sent(stack, kind="owner_arrival_check")  # the owner still hears about the appointment
