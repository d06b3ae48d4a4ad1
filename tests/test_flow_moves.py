"""Flow 3 (moved → re-plan + "moved" message; cancelled → steps stop, cancellation flow) and flow 4 (the
cancellation policy in the ledger, carry-over in grace, waiver), end to end on both backends."""
from __future__ import annotations

from datetime import timedelta

import pytest

from store.models import Appointment, Client, LedgerEntry
from tests import flowkit as fk
from tests.factories import make_appointment
from workflows.ledger import balance, waive
from workflows.lifecycle import record_cancel, record_move
from store.models import Owner


def _move(stack, appt_id, delta):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        a = s.get(Appointment, appt_id)
        record_move(s, a, starts_at=a.starts_at + delta, ends_at=a.ends_at + delta, now=stack.clock.now())


def _cancel(stack, appt_id, by="calendar"):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        record_cancel(s, s.get(Appointment, appt_id), now=stack.clock.now(), by=by)


def test_a_move_replans_every_pending_step_and_tells_the_client(stack):
    _, _, appt_id = fk.setup(stack, starts_in=timedelta(days=5))
    stack.run_due()
    before = fk.steps(stack, appt_id)
    _move(stack, appt_id, timedelta(days=2))
    stack.run_due()
    [moved] = fk.sent(stack, kind="moved")
    assert "9 de marzo" in moved.subject and "10:00" in moved.subject
    after = fk.steps(stack, appt_id)
    new_start = fk.appointment(stack, appt_id).starts_at
    for kind in ("reminder_48h", "reminder_2h", "confirm_nudge", "arrival_check"):
        assert after[kind].id != before[kind].id, kind
        assert after[kind].state == "pending"
        assert after[kind].payload["starts_at"] == new_start.isoformat()
    with stack.session() as s:
        from store.models import Step

        old = s.get(Step, before["reminder_48h"].id)
        assert old.state == "cancelled"
    fk.run_until(stack, new_start - timedelta(hours=1), step=timedelta(hours=8))
    reminders = fk.sent(stack, kind="reminder")
    assert len(reminders) == 2 and "9 de marzo" in reminders[0].subject


def test_a_cancellation_stops_pending_steps_and_starts_the_cancellation_flow(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5))
    stack.run_due()
    _cancel(stack, appt_id)
    st = fk.steps(stack, appt_id)
    assert all(st[k].state == "cancelled" for k in ("reminder_48h", "reminder_2h", "confirm_nudge", "arrival_check"))
    stack.run_due()
    [thanks] = fk.sent(stack, kind="cancel_thanks")
    assert thanks.body_text.count("/l/") >= 8  # seven reasons, reschedule (and unsubscribe)
    fk.run_until(stack, stack.clock.now() + timedelta(days=8), step=timedelta(hours=12))
    assert len(fk.sent(stack, kind="cancel_followup")) == 1
    assert fk.sent(stack, kind="reminder") == []


def test_early_cancellation_carries_the_deposit_over_when_rebooked_in_grace(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5), policy={"deposit_cents": 2000})
    assert fk.ledger(stack, client_id) == [("deposit", 2000)]
    _cancel(stack, appt_id, by="client")
    assert fk.ledger(stack, client_id)[-1] == ("carry_over", 2000)
    stack.clock.advance(timedelta(days=6))  # after the original date, within the 3-day grace
    with stack.session() as s:
        owner = s.get(Owner, owner_id)
        new = make_appointment(s, owner, stack.clock.now(), stack.clock.now() + timedelta(days=4), uid="evt-new")
        new_id = new.id
    with stack.session() as s:
        entry = s.query(LedgerEntry).filter_by(appointment_id=new_id).one()
        assert (entry.kind, entry.amount_cents) == ("deposit", 2000)
        assert entry.reason == f"carried over from appointment {appt_id}"
    fk.run_until(stack, stack.clock.now() + timedelta(days=2), step=timedelta(hours=12))
    assert fk.steps(stack, appt_id)["grace_check"].outcome.startswith("the carried-over deposit went")
    assert ("deposit_kept", 2000) not in fk.ledger(stack, client_id)


def test_early_cancellation_not_rebooked_in_grace_keeps_the_deposit(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5), policy={"deposit_cents": 2000})
    _cancel(stack, appt_id)
    fk.run_until(stack, stack.clock.now() + timedelta(days=9), step=timedelta(hours=12))
    assert fk.ledger(stack, client_id)[-1] == ("deposit_kept", 2000)
    assert fk.steps(stack, appt_id)["grace_check"].state == "done"


@pytest.mark.parametrize("late_by", [timedelta(hours=47), timedelta(hours=1)])
def test_late_cancellation_owes_the_fee_and_the_owner_can_waive_it(stack, late_by):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5), policy={"fee_cents": 3000})
    start = fk.appointment(stack, appt_id).starts_at
    stack.clock.set(start - late_by)
    _cancel(stack, appt_id, by="client")
    assert fk.appointment(stack, appt_id).late_cancel
    assert fk.ledger(stack, client_id) == [("fee", 3000)]
    with stack.session() as s:
        assert balance(s, client_id).owed_cents == 3000
        with pytest.raises(ValueError, match="reason"):
            waive(s, s.get(Appointment, appt_id), "  ", stack.clock.now())
        [w] = waive(s, s.get(Appointment, appt_id), "family emergency", stack.clock.now())
        assert w.reason == "family emergency"
        assert waive(s, s.get(Appointment, appt_id), "again", stack.clock.now()) == []
        assert balance(s, client_id).owed_cents == 0


def test_a_late_move_keeps_the_deposit_an_early_one_carries_it(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=5), policy={"deposit_cents": 2000})
    _move(stack, appt_id, timedelta(days=1))  # early: carries over
    assert fk.ledger(stack, client_id)[-1] == ("carry_over", 2000)
    start = fk.appointment(stack, appt_id).starts_at
    stack.clock.set(start - timedelta(hours=5))
    _move(stack, appt_id, timedelta(days=1))  # late
    assert fk.ledger(stack, client_id)[-1] == ("deposit_kept", 2000)
    a = fk.appointment(stack, appt_id)
    assert (a.move_count, a.late_move_count) == (2, 1)


def test_owner_cancelling_charges_nothing(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(hours=5), policy={"fee_cents": 3000})
    _cancel(stack, appt_id, by="owner")
    assert fk.ledger(stack, client_id) == []
    with stack.session() as s:
        assert s.get(Client, client_id) is not None
