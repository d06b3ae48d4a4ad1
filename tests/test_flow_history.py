"""Flow 9: history counters, reliability score, repeat-offender flags that switch the client to the stricter
policy, and the "long-reliable client suddenly cancelling" flag."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from store.models import Appointment, Client, Owner, Step
from tests import flowkit as fk
from tests.factories import make_appointment
from workflows.answers import record_answer
from workflows.history import ClientHistory, Visit, flags, flags_for_client, load_history, reliability_score
from workflows.lifecycle import record_cancel, record_move
from workflows.noshow import mark_no_show
from workflows.policy import Policy

T0 = datetime(2025, 1, 6, 9, tzinfo=timezone.utc)


def _visits(*outcomes: str) -> ClientHistory:
    return ClientHistory(visits=[Visit(T0 + timedelta(weeks=i), o) for i, o in enumerate(outcomes)])


def test_reliability_score_weighs_no_shows_double():
    assert reliability_score(ClientHistory()) is None
    assert reliability_score(_visits("kept", "kept", "cancelled")) == 100
    assert reliability_score(_visits("kept", "no_show")) == 33
    assert reliability_score(_visits("kept", "late_cancel")) == 50


def test_repeat_offender_thresholds():
    p = Policy()
    assert flags(_visits("kept", "no_show"), p) == []
    assert flags(_visits("no_show", "kept", "no_show"), p) == ["repeat_no_show"]
    assert flags(_visits("late_cancel", "late_cancel", "late_cancel"), p) == ["repeat_late_cancel"]
    assert flags(_visits("no_show", "no_show"), Policy(strict_after_no_shows=3)) == []


def test_long_reliable_client_suddenly_cancelling_is_flagged_for_a_call():
    p = Policy()
    assert "sudden" in flags(_visits(*["kept"] * 6, "cancelled", "kept", "cancelled"), p)
    assert "sudden" not in flags(_visits(*["kept"] * 6, "kept", "cancelled"), p)
    assert "sudden" not in flags(_visits("kept", "kept", "cancelled", "cancelled"), p), "not long-reliable"


def test_counters_and_stricter_policy_end_to_end(stack):
    owner_id, client_id, first_id = fk.setup(stack, starts_in=timedelta(days=3), policy={"fee_cents": 2500})
    now = stack.clock.now()
    with stack.session() as s:
        owner = s.get(Owner, owner_id)
        second = make_appointment(s, owner, now, now + timedelta(days=10), uid="evt-2")
        third = make_appointment(s, owner, now, now + timedelta(days=20), uid="evt-3")
        ids = (second.id, third.id)
    stack.run_due()
    stack.clock.advance(timedelta(hours=5))
    with stack.session() as s:
        record_answer(s, s.get(Client, client_id), channel="link", text="ok", intent="confirm", now=stack.clock.now(),
                      appointment=s.get(Appointment, first_id))
        a = s.get(Appointment, ids[0])
        record_move(s, a, starts_at=a.starts_at + timedelta(days=1), ends_at=a.ends_at + timedelta(days=1),
                    now=stack.clock.now())
    for appt_id in (first_id, ids[0]):
        start = fk.appointment(stack, appt_id).starts_at
        stack.clock.set(start + timedelta(minutes=20))
        with stack.session() as s:
            mark_no_show(s, s.get(Appointment, appt_id), stack.clock.now())
    with stack.session() as s:
        h = load_history(s, client_id, stack.clock.now())
        assert (h.appointments, h.confirmations, h.no_shows, h.reschedules) == (3, 1, 2, 1)
        assert h.fees_owed_cents == 5000
        assert h.median_response_s == 5 * 3600  # confirmed five hours after the confirmation request
        assert "repeat_no_show" in flags_for_client(s, client_id, stack.clock.now())
        client = s.get(Client, client_id)
        assert client.policy_overrides["deposit_cents"] == 3000
        assert client.policy_overrides["reminder_hours"] == [72, 48, 24, 2]
        # The promise already made on the third appointment stands; the next booking gets the stricter policy.
        assert s.get(Appointment, ids[1]).policy["deposit_cents"] == 0
        nxt = make_appointment(s, s.get(Owner, owner_id), stack.clock.now(), stack.clock.now() + timedelta(days=9),
                               uid="evt-4")
        assert nxt.policy["deposit_cents"] == 3000
        kinds = {st.kind for st in s.query(Step).filter_by(subject_id=nxt.id, subject_type="appointment")}
        assert {"reminder_72h", "reminder_24h"} <= kinds


def test_stated_reasons_are_counted(stack):
    _, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    with stack.session() as s:
        record_cancel(s, s.get(Appointment, appt_id), now=stack.clock.now(), by="client")
        record_answer(s, s.get(Client, client_id), channel="link", text="reason: price; contact: whatsapp",
                      intent="reason", now=stack.clock.now())
        h = load_history(s, client_id, stack.clock.now())
        assert h.reasons == {"price": 1} and h.cancellations == 1 and h.late_cancellations == 0
