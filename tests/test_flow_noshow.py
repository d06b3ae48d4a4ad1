"""Flow 6 (wait, then follow up) into flow 7 (ghosting: check-in, ultimatum, closing with a numbered invoice), end
to end on both backends with a real RQ worker and a frozen clock."""
from __future__ import annotations

from datetime import timedelta

from store.models import Appointment, Client
from tests import flowkit as fk
from workflows.answers import record_answer
from workflows.ghosting import start_ghosting
from workflows.noshow import mark_arrived, mark_no_show, mark_not_yet


def _to_start(stack, appt_id, plus=timedelta(0)):  # type: ignore[no-untyped-def]
    start = fk.appointment(stack, appt_id).starts_at
    fk.run_until(stack, start + plus, step=timedelta(hours=12))
    return start


def test_owner_asked_at_start_plus_5_then_not_yet_then_no_show_then_ghosting(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3), policy={"fee_cents": 4000})
    start = _to_start(stack, appt_id, timedelta(minutes=4))
    assert fk.sent(stack, kind="owner_arrival_check") == []
    stack.clock.set(start + timedelta(minutes=5))
    stack.run_due()
    [ask] = fk.sent(stack, kind="owner_arrival_check")
    assert ask.recipient == fk.owner_email(stack, owner_id)
    assert sum(1 for line in ask.body_text.splitlines() if "/l/" in line) == 3  # Arrived / Not yet / No-show

    with stack.session() as s:
        mark_not_yet(s, s.get(Appointment, appt_id), stack.clock.now())
    stack.run_due()
    [wait] = fk.sent(stack, kind="not_yet")
    assert "10:15" in wait.body_text and "meet.google.com" in wait.body_text  # start + 15 min, Madrid

    stack.clock.set(start + timedelta(minutes=15))
    stack.run_due()
    stack.run_due()  # the follow-up planned by the no-show is picked up by the next dispatcher tick
    a = fk.appointment(stack, appt_id)
    assert a.attendance == "no_show"
    assert fk.ledger(stack, client_id) == [("fee", 4000)]
    # Today the client already had the 2 h reminder and the wait note: the daily limit (2) defers "we waited for
    # you" to the next morning in their zone, with the reason on the step; nothing is dropped.
    assert fk.sent(stack, kind="noshow_waited") == []
    deferred = fk.steps(stack, appt_id)["noshow_waited"]
    assert deferred.state == "pending" and "daily limit" in deferred.outcome
    assert deferred.due_at == start.replace(hour=7, minute=1) + timedelta(days=1)  # 08:01 Madrid
    fk.run_until(stack, deferred.due_at, step=timedelta(hours=6))
    [waited] = fk.sent(stack, kind="noshow_waited")
    assert "va todo bien" in waited.subject.lower() and "/l/" in waited.body_text

    fk.run_until(stack, start + timedelta(days=2, minutes=16), step=timedelta(hours=12))
    [pol] = fk.sent(stack, kind="noshow_policy")
    assert "40,00" in pol.body_text and "/l/" in pol.body_text
    assert fk.client(stack, client_id).state == "active"

    # No answer 3 days after that: the ghosting sequence starts with a check-in.
    fk.run_until(stack, start + timedelta(days=5, hours=1), step=timedelta(hours=12))
    c = fk.client(stack, client_id)
    assert c.state == "ghosting"
    [checkin] = fk.sent(stack, kind="ghost_checkin")
    assert "bien" in checkin.body_text and "€" not in checkin.body_text  # only asks if they are all right

    fk.run_until(stack, c.ghost_started_at + timedelta(days=7, hours=1), step=timedelta(hours=12))
    [ult] = fk.sent(stack, kind="ghost_ultimatum")
    closing = c.ghost_started_at + timedelta(days=14)
    assert "40,00" in ult.body_text and f"{closing.day} de marzo" in ult.body_text

    fk.run_until(stack, closing + timedelta(hours=1), step=timedelta(hours=12))
    c = fk.client(stack, client_id)
    assert c.state == "closed" and c.closed_at is not None
    assert fk.ledger(stack, client_id)[-1] == ("invoice", 4000)
    [last] = fk.sent(stack, kind="ghost_close")
    assert "2026-0001" in last.body_text and "puerta" in last.subject
    fk.run_until(stack, closing + timedelta(days=120), step=timedelta(days=10))
    assert len(fk.sent(stack, recipient="marta@example.com")) == len(set(m.id for m in fk.sent(stack, recipient="marta@example.com")))
    assert fk.kinds(stack).count("ghost_close") == 1, "never more"


def test_arrived_stops_the_wait(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    start = _to_start(stack, appt_id, timedelta(minutes=5))
    with stack.session() as s:
        mark_arrived(s, s.get(Appointment, appt_id), stack.clock.now())
    fk.run_until(stack, start + timedelta(days=10), step=timedelta(hours=12))
    assert fk.sent(stack, kind="not_yet") == [] and fk.sent(stack, kind="noshow_waited") == []
    assert fk.appointment(stack, appt_id).attendance == "arrived"


def test_automatic_mode_writes_to_the_client_and_declares_the_no_show(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3), policy={"no_show_mode": "automatic"})
    start = _to_start(stack, appt_id, timedelta(minutes=5))
    stack.run_due()
    assert fk.sent(stack, kind="owner_arrival_check") == []
    assert len(fk.sent(stack, kind="not_yet")) == 1
    stack.clock.set(start + timedelta(minutes=15))
    stack.run_due()
    assert fk.appointment(stack, appt_id).attendance == "no_show"


def test_a_reply_after_the_no_show_stops_the_follow_ups_and_reaches_the_owner(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    start = _to_start(stack, appt_id, timedelta(minutes=6))
    with stack.session() as s:
        mark_no_show(s, s.get(Appointment, appt_id), stack.clock.now())
    stack.run_due()
    stack.clock.advance(timedelta(hours=3))
    with stack.session() as s:
        record_answer(s, s.get(Client, client_id), channel="email", text="Perdón, se me complicó el día",
                      intent="fine_busy", now=stack.clock.now())
    fk.run_until(stack, start + timedelta(days=30), step=timedelta(hours=12))
    assert fk.sent(stack, kind="noshow_policy") == [] and fk.sent(stack, kind="ghost_checkin") == []
    assert len(fk.sent(stack, kind="owner_reply")) == 1
    assert fk.client(stack, client_id).state == "active"


def test_the_owner_can_start_ghosting_for_any_client_and_an_answer_stops_it(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=20))
    with stack.session() as s:
        assert start_ghosting(s, s.get(Client, client_id), stack.clock.now())
        assert not start_ghosting(s, s.get(Client, client_id), stack.clock.now())
    stack.run_due()
    assert len(fk.sent(stack, kind="ghost_checkin")) == 1
    stack.clock.advance(timedelta(days=2))
    with stack.session() as s:
        record_answer(s, s.get(Client, client_id), channel="email", text="Todo bien, solo liado", intent="fine_busy",
                      now=stack.clock.now())
    fk.run_until(stack, stack.clock.now() + timedelta(days=15), step=timedelta(hours=12))
    assert fk.sent(stack, kind="ghost_ultimatum") == [] and fk.sent(stack, kind="ghost_close") == []
    c = fk.client(stack, client_id)
    assert c.state == "active"
    st = fk.steps(stack, client_id, subject_type="client")
    assert st["ghost_ultimatum"].state == "cancelled" and "answered" in st["ghost_ultimatum"].outcome


def test_booking_again_reopens_a_closed_file_and_stops_ghosting(stack):
    owner_id, client_id, _ = fk.setup(stack, starts_in=timedelta(days=20))
    with stack.session() as s:
        start_ghosting(s, s.get(Client, client_id), stack.clock.now())
    stack.run_due()
    with stack.session() as s:
        from store.models import Owner
        from tests.factories import make_appointment

        make_appointment(s, s.get(Owner, owner_id), stack.clock.now(), stack.clock.now() + timedelta(days=3),
                         uid="evt-back")
    assert fk.client(stack, client_id).state == "active"
    assert fk.steps(stack, client_id, subject_type="client")["ghost_ultimatum"].state == "cancelled"
