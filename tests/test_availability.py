"""Availability: working hours, breaks, days off, busy time, buffers, notice, horizon, and daylight saving in the
owner's and the client's zone (Europe/Madrid, America/Mexico_City with no DST since 2022, America/Santiago which
changes at midnight)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.availability import (
    BookingRules, Busy, RulesError, SlotShape, days_for_client, free_slots, is_bookable, preferred_slots,
    working_windows,
)

UTC = timezone.utc
MADRID, MEXICO, SANTIAGO = "Europe/Madrid", "America/Mexico_City", "America/Santiago"
HOUR = SlotShape(duration=timedelta(hours=1))


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def walls(slots: list[datetime], tz: str) -> list[str]:
    return [s.astimezone(ZoneInfo(tz)).strftime("%a %d %H:%M") for s in slots]


def rules(tz: str = MADRID, **data) -> BookingRules:  # type: ignore[no-untyped-def]
    base = {"min_notice_minutes": 0, "step_minutes": 60}
    base.update(data)
    return BookingRules.from_dict(tz, base)


def day_slots(r: BookingRules, tz: str, d: date, shape: SlotShape = HOUR, busy: Busy | None = None) -> list[str]:
    start = datetime.combine(d, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)
    slots = free_slots(r, shape, busy or Busy([]), now=start - timedelta(days=1), start=start,
                       end=start + timedelta(hours=24))
    return [s.astimezone(ZoneInfo(tz)).strftime("%H:%M") for s in slots]


# ------------------------------------------------------------------------------------------------ basic rules


def test_working_hours_with_a_lunch_break():
    assert day_slots(rules(), MADRID, date(2026, 3, 2)) == [
        "09:00", "10:00", "11:00", "12:00", "14:00", "15:00", "16:00", "17:00"]


def test_half_hour_steps_never_cross_a_break_or_the_end_of_day():
    r = rules(step_minutes=30)
    got = day_slots(r, MADRID, date(2026, 3, 2))
    assert got[:8] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00", "14:00"]
    assert got[-1] == "17:00" and "12:30" not in got and "17:30" not in got


def test_weekends_and_days_off_have_no_slots():
    r = rules(days_off=["2026-03-04"])
    assert day_slots(r, MADRID, date(2026, 3, 7)) == []  # Saturday
    assert day_slots(r, MADRID, date(2026, 3, 8)) == []  # Sunday
    assert day_slots(r, MADRID, date(2026, 3, 4)) == []  # a day off
    assert day_slots(r, MADRID, date(2026, 3, 5)) != []


def test_custom_hours_per_weekday():
    r = rules(hours={"sat": [["10:00", "12:00"]], "mon": [["16:00", "24:00"]]})
    assert day_slots(r, MADRID, date(2026, 3, 7)) == ["10:00", "11:00"]
    assert day_slots(r, MADRID, date(2026, 3, 2)) == ["16:00", "17:00", "18:00", "19:00", "20:00", "21:00",
                                                      "22:00", "23:00"]
    assert day_slots(r, MADRID, date(2026, 3, 3)) == []


def test_a_slot_busy_in_any_calendar_is_never_offered():
    busy = Busy([
        (local(MADRID, 2026, 3, 2, 10, 0), local(MADRID, 2026, 3, 2, 10, 30)),   # calendar 1
        (local(MADRID, 2026, 3, 2, 15, 45), local(MADRID, 2026, 3, 2, 16, 15)),  # calendar 2
        (local(MADRID, 2026, 3, 2, 16, 0), local(MADRID, 2026, 3, 2, 16, 5)),    # calendar 3, overlapping
    ])
    assert day_slots(rules(), MADRID, date(2026, 3, 2), busy=busy) == ["09:00", "11:00", "12:00", "14:00", "17:00"]


def test_touching_a_busy_interval_is_not_a_conflict():
    busy = Busy([(local(MADRID, 2026, 3, 2, 10, 0), local(MADRID, 2026, 3, 2, 11, 0))])
    assert "09:00" in day_slots(rules(), MADRID, date(2026, 3, 2), busy=busy)
    assert "11:00" in day_slots(rules(), MADRID, date(2026, 3, 2), busy=busy)


def test_buffers_keep_time_free_before_and_after():
    busy = Busy([(local(MADRID, 2026, 3, 2, 11, 0), local(MADRID, 2026, 3, 2, 12, 0))])
    shape = SlotShape(duration=timedelta(hours=1), buffer_before=timedelta(minutes=15),
                      buffer_after=timedelta(minutes=15))
    got = day_slots(rules(step_minutes=15), MADRID, date(2026, 3, 2), shape, busy)
    assert "09:45" in got and "10:00" not in got  # 10:00-11:00 + 15 min after touches 11:15 > 11:00
    assert "12:00" not in got and "12:15" not in got  # 12:15 - 15 min before = 12:00: free, but the break starts
    assert got[got.index("09:45") + 1] == "14:00"


def test_minimum_notice_and_horizon():
    r = rules(min_notice_minutes=180, horizon_days=2)
    now = local(MADRID, 2026, 3, 2, 9, 10)
    slots = free_slots(r, HOUR, Busy([]), now=now)
    assert walls(slots, MADRID)[0] == "Mon 02 14:00"  # 12:10 is the earliest; 12:00 is too early, 13:00 in the break
    assert min(slots) >= now + timedelta(hours=3)
    assert max(slots) <= now + timedelta(days=2)
    assert walls(slots, MADRID)[-1] == "Wed 04 09:00"


def test_candidates_stay_aligned_to_the_window_start_after_notice():
    r = rules(step_minutes=30, min_notice_minutes=0)
    now = local(MADRID, 2026, 3, 2, 9, 10)
    assert walls(free_slots(r, HOUR, Busy([]), now=now, limit=2), MADRID) == ["Mon 02 09:30", "Mon 02 10:00"]


def test_limit_returns_the_earliest():
    slots = free_slots(rules(), HOUR, Busy([]), now=local(MADRID, 2026, 3, 1, 0, 0), limit=3)
    assert walls(slots, MADRID) == ["Mon 02 09:00", "Mon 02 10:00", "Mon 02 11:00"]


def test_is_bookable_rechecks_a_single_start():
    r = rules()
    now = local(MADRID, 2026, 3, 1, 0, 0)
    nine = local(MADRID, 2026, 3, 2, 9, 0)
    assert is_bookable(r, HOUR, Busy([]), nine, now=now)
    assert not is_bookable(r, HOUR, Busy([(nine, nine + timedelta(minutes=1))]), nine, now=now)
    assert not is_bookable(r, HOUR, Busy([]), nine + timedelta(minutes=7), now=now)  # not an offered start
    assert not is_bookable(r, HOUR, Busy([]), local(MADRID, 2026, 3, 2, 13, 0), now=now)  # lunch break


def test_bad_settings_name_the_field():
    with pytest.raises(RulesError, match="hours.mon"):
        BookingRules.from_dict(MADRID, {"hours": {"mon": [["9am", "13:00"]]}})
    with pytest.raises(RulesError, match="ends before"):
        BookingRules.from_dict(MADRID, {"hours": {"mon": [["13:00", "09:00"]]}})
    with pytest.raises(RulesError, match="Mars/Olympus"):
        BookingRules.from_dict("Mars/Olympus", {})
    with pytest.raises(RulesError, match="days_off"):
        BookingRules.from_dict(MADRID, {"days_off": ["25/12/2026"]})


def test_rules_round_trip():
    r = rules(hours={"mon": [["09:00", "13:00"]], "sun": [["20:00", "24:00"]]}, days_off=["2026-12-25"])
    assert BookingRules.from_dict(MADRID, r.to_dict()) == r


# ------------------------------------------------------------------------------------------------ daylight saving


def test_madrid_spring_forward_week_keeps_wall_clock_hours():
    """Sunday 29 March 2026 02:00 → 03:00. The week around it: 09:00 local every day, 08:00 UTC before and
    07:00 UTC after."""
    r = rules(hours={d: [["09:00", "11:00"]] for d in ("fri", "sat", "sun", "mon")})
    now = local(MADRID, 2026, 3, 26, 0, 0)
    slots = free_slots(r, HOUR, Busy([]), now=now, end=local(MADRID, 2026, 3, 31, 0, 0))
    assert walls(slots, MADRID) == ["Fri 27 09:00", "Fri 27 10:00", "Sat 28 09:00", "Sat 28 10:00",
                                    "Sun 29 09:00", "Sun 29 10:00", "Mon 30 09:00", "Mon 30 10:00"]
    assert [s.hour for s in slots[::2]] == [8, 8, 7, 7]


def test_madrid_window_inside_the_skipped_hour_starts_after_the_jump():
    r = rules(hours={"sun": [["01:00", "05:00"]]})
    # 01:00-02:00 exists, 02:00-03:00 does not: three real hours; 60-minute slots at 01:00, 03:00, 04:00.
    assert day_slots(r, MADRID, date(2026, 3, 29)) == ["01:00", "03:00", "04:00"]


def test_madrid_fall_back_repeated_hour_gives_one_more_slot():
    r = rules(hours={"sun": [["01:00", "04:00"]]})
    got = day_slots(r, MADRID, date(2026, 10, 25))
    assert len(got) == 4 and got[0] == "01:00" and got[-1] == "03:00"  # 02:00 happens twice


def test_mexico_city_has_no_dst_and_sees_madrid_move_by_an_hour():
    r = rules(hours={"fri": [["09:00", "10:00"]], "mon": [["09:00", "10:00"]]})
    slots = free_slots(r, HOUR, Busy([]), now=local(MADRID, 2026, 3, 26, 0, 0), end=local(MADRID, 2026, 3, 31))
    assert walls(slots, MEXICO) == ["Fri 27 02:00", "Mon 30 01:00"]
    # A Mexico City owner's 09:00 is 15:00 UTC all year.
    mx = rules(MEXICO)
    for d in (date(2026, 1, 5), date(2026, 4, 6), date(2026, 7, 6), date(2026, 11, 2)):
        first = free_slots(mx, HOUR, Busy([]), now=datetime.combine(d, time(0), tzinfo=UTC), limit=1)[0]
        assert (first.hour, first.minute) == (15, 0)


def test_santiago_owner_across_the_april_midnight_change():
    """4-5 April 2026: at 24:00 (-03) clocks go back to 23:00 (-04): an evening window 20:00-24:00 is five real
    hours that night; morning hours the next day are 09:00 -04."""
    r = rules(SANTIAGO, hours={"sat": [["20:00", "24:00"]], "sun": [["09:00", "10:00"]]})
    slots = free_slots(r, HOUR, Busy([]), now=local(SANTIAGO, 2026, 4, 4, 0, 0), end=local(SANTIAGO, 2026, 4, 6))
    assert len(slots) == 6
    assert [s.strftime("%H:%M") for s in slots] == ["23:00", "00:00", "01:00", "02:00", "03:00", "13:00"]
    assert walls(slots, SANTIAGO)[-1] == "Sun 05 09:00"


def test_santiago_owner_across_the_september_skipped_midnight():
    """6 September 2026: 00:00 (-04) jumps to 01:00 (-03). A window from midnight starts at 01:00."""
    r = rules(SANTIAGO, hours={"sun": [["00:00", "03:00"]], "sat": [["22:00", "24:00"]]})
    sat = day_slots(r, SANTIAGO, date(2026, 9, 5))
    sun = day_slots(r, SANTIAGO, date(2026, 9, 6))
    assert sat == ["22:00", "23:00"]
    assert sun == ["01:00", "02:00"]


def test_madrid_owner_shown_to_a_santiago_client_across_both_changes():
    r = rules(hours={"fri": [["10:00", "11:00"]]})
    slots = free_slots(r, HOUR, Busy([]), now=local(MADRID, 2026, 3, 1), end=local(MADRID, 2026, 4, 30))
    shown = {s.astimezone(ZoneInfo(MADRID)).date(): s.astimezone(ZoneInfo(SANTIAGO)).strftime("%H:%M")
             for s in slots}
    assert shown[date(2026, 3, 27)] == "06:00"  # Madrid +1, Santiago -3: 4 hours apart
    assert shown[date(2026, 4, 3)] == "05:00"  # Madrid +2, Santiago -3: 5 hours apart
    assert shown[date(2026, 4, 10)] == "04:00"  # Madrid +2, Santiago -4: 6 hours apart


def test_days_for_client_groups_by_the_clients_date_and_language():
    r = rules(hours={"mon": [["16:00", "18:00"]]})
    slots = free_slots(r, HOUR, Busy([]), now=local(MADRID, 2026, 3, 1), limit=2)
    days = days_for_client(slots, "Pacific/Auckland", "en")
    assert [d.day for d in days] == [date(2026, 3, 3)]  # Madrid's Monday afternoon is Tuesday morning there
    assert [s.label for s in days[0].slots] == ["4:00\u202fAM", "5:00\u202fAM"]
    es = days_for_client(slots, MADRID, "es")
    assert es[0].label == "lunes, 2 de marzo de 2026" and es[0].slots[0].label == "16:00"
    assert es[0].slots[0].iso == "2026-03-02T15:00:00Z"


def test_preferred_slots_follow_the_clients_usual_hours():
    r = rules(step_minutes=60)
    slots = free_slots(r, HOUR, Busy([]), now=local(MADRID, 2026, 3, 1), end=local(MADRID, 2026, 3, 7))
    history = [local(MADRID, 2026, 2, d, 16, 0) for d in (2, 9, 16)]  # Mondays at 16:00
    best = preferred_slots(slots, history, MADRID, count=3)
    assert walls(best, MADRID)[0] == "Mon 02 16:00"
    assert all(s.astimezone(ZoneInfo(MADRID)).hour in (15, 16, 17) for s in best)
    assert preferred_slots(slots, [], MADRID) == []
    shown = days_for_client(slots, MADRID, "es", preferred=best)
    assert sum(s.preferred for d in shown for s in d.slots) == 3


def test_working_windows_are_utc_intervals():
    r = rules(hours={"mon": [["09:00", "13:00"], ["14:00", "18:00"]]})
    w = working_windows(r, local(MADRID, 2026, 3, 30), local(MADRID, 2026, 3, 31))
    assert w == [(datetime(2026, 3, 30, 7, tzinfo=UTC), datetime(2026, 3, 30, 11, tzinfo=UTC)),
                 (datetime(2026, 3, 30, 12, tzinfo=UTC), datetime(2026, 3, 30, 16, tzinfo=UTC))]


# ------------------------------------------------------------------------------------------------ properties


ZONES = st.sampled_from([MADRID, MEXICO, SANTIAGO, "UTC", "Pacific/Auckland"])
base_instant = datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(tz=ZONES, start_day=st.integers(0, 360), busy=st.lists(st.tuples(st.integers(0, 14 * 96), st.integers(1, 16)),
                                                                max_size=40),
       minutes=st.sampled_from([15, 30, 45, 60, 90]), before=st.sampled_from([0, 10]), after=st.sampled_from([0, 15]))
def test_every_offered_slot_is_inside_hours_and_clear_of_busy(tz, start_day, busy, minutes, before, after):
    r = rules(tz, step_minutes=15)
    now = base_instant + timedelta(days=start_day)
    intervals = [(now + timedelta(minutes=15 * a), now + timedelta(minutes=15 * (a + n))) for a, n in busy]
    shape = SlotShape(timedelta(minutes=minutes), timedelta(minutes=before), timedelta(minutes=after))
    slots = free_slots(r, shape, Busy(intervals), now=now, end=now + timedelta(days=14))
    assert slots == sorted(set(slots))
    zone = ZoneInfo(tz)
    windows = working_windows(r, now, now + timedelta(days=15))
    for s in slots:
        e = s + shape.duration
        assert any(a <= s and e <= b for a, b in windows)
        assert s.astimezone(zone).weekday() < 5
        for a, b in intervals:
            assert not (a < e + shape.buffer_after and s - shape.buffer_before < b)
        assert is_bookable(r, shape, Busy(intervals), s, now=now)
