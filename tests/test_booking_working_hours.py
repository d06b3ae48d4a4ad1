"""The working hours an owner sets on the Settings page are what the booking page offers, unless booking-specific
hours (with breaks) were set with `reagenda booking setup`."""
from __future__ import annotations

from datetime import time

from store.models import BookingSettings
from tests.factories import make_owner
from workflows.booking import rules_for


def _windows(rules, day: int):  # type: ignore[no-untyped-def]
    return list(rules.weekly[day])


def test_settings_working_hours_drive_availability(sqlite_stack):
    now = sqlite_stack.clock.now()
    with sqlite_stack.session() as s:
        owner = make_owner(s, now)
        assert _windows(rules_for(s, owner), 0) == [(time(9), time(13)), (time(14), time(18))], "defaults"
        owner.preferences = {"working_hours": {"days": ["mon", "wed"], "start": "10:00", "end": "16:30"}}
        rules = rules_for(s, owner)
        assert _windows(rules, 0) == [(time(10), time(16, 30))]
        assert _windows(rules, 1) == [] and _windows(rules, 2) == [(time(10), time(16, 30))]

        s.add(BookingSettings(owner_id=owner.id, slug="lumen", rules={"hours": {"fri": [["08:00", "12:00"]]}},
                              meeting_link="", updated_at=now))
        s.flush()
        booked = rules_for(s, owner)
        assert _windows(booked, 4) == [(time(8), time(12))] and _windows(booked, 0) == [], "booking hours win"
