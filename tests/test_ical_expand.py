"""ICS → occurrences: series with overrides, EXDATE, RDATE, all-day, floating, Windows and X-WR zones, bad input."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connectors.ical import expand

UTC = timezone.utc
W0, W1 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


def cal(*events: str, header: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{header}{body}END:VCALENDAR\r\n".replace("\n\n", "\n")


def crlf(text: str) -> str:
    return "\r\n".join(line.strip() for line in text.strip().splitlines())


SERIES = crlf("""
UID:series-1
DTSTART;TZID=W. Europe Standard Time:20260302T100000
DTEND;TZID=W. Europe Standard Time:20260302T110000
RRULE:FREQ=WEEKLY;COUNT=5
EXDATE;TZID=W. Europe Standard Time:20260309T100000
RDATE;TZID=W. Europe Standard Time:20260311T100000
SUMMARY:Terapia
ORGANIZER:mailto:Owner@example.com
ATTENDEE;CN=Ana;PARTSTAT=ACCEPTED:mailto:ana@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:owner@example.com
LOCATION:https://us02web.zoom.us/j/123456789
""")
OVERRIDE = crlf("""
UID:series-1
RECURRENCE-ID;TZID=W. Europe Standard Time:20260316T100000
DTSTART;TZID=W. Europe Standard Time:20260317T120000
DTEND;TZID=W. Europe Standard Time:20260317T130000
SUMMARY:Terapia (movida)
ATTENDEE;PARTSTAT=DECLINED:mailto:ana@example.com
""")


def test_series_with_windows_zone_exdate_rdate_and_override() -> None:
    got = expand(cal(SERIES, OVERRIDE), window_start=W0, window_end=W1, etag='"e1"', source="cal/x.ics")
    assert got.skipped == [] and got.uids == {"series-1"}
    starts = sorted((o.starts_at, o.recurrence_id, o.title) for o in got.occurrences)
    # Europe/Berlin is UTC+1 in March before the 29th, UTC+2 after: 10:00 local → 09:00Z / 08:00Z.
    assert starts == [
        (datetime(2026, 3, 2, 9, tzinfo=UTC), "2026-03-02T09:00:00+00:00", "Terapia"),
        (datetime(2026, 3, 11, 9, tzinfo=UTC), "2026-03-11T09:00:00+00:00", "Terapia"),
        (datetime(2026, 3, 17, 11, tzinfo=UTC), "2026-03-16T09:00:00+00:00", "Terapia (movida)"),
        (datetime(2026, 3, 23, 9, tzinfo=UTC), "2026-03-23T09:00:00+00:00", "Terapia"),
        (datetime(2026, 3, 30, 8, tzinfo=UTC), "2026-03-30T08:00:00+00:00", "Terapia"),
    ]
    first = min(got.occurrences, key=lambda o: o.starts_at)
    assert first.meeting_link == "https://us02web.zoom.us/j/123456789" and first.etag == '"e1"'
    assert first.organizer_email == "owner@example.com"
    assert [(a.email, a.status, a.is_organizer) for a in first.attendees] == [
        ("ana@example.com", "accepted", False), ("owner@example.com", "accepted", True)]
    moved = next(o for o in got.occurrences if o.title.endswith("(movida)"))
    assert moved.attendees[0].status == "declined"


def test_all_day_and_floating_use_the_calendar_zone_and_single_events_have_no_recurrence_id() -> None:
    text = cal("UID:day\r\nDTSTART;VALUE=DATE:20260303\r\nSUMMARY:Feria",
               "UID:float\r\nDTSTART:20260302T100000\r\nDURATION:PT45M")
    got = expand(text, window_start=W0, window_end=W1, default_tz="America/Mexico_City")
    by_uid = {o.uid: o for o in got.occurrences}
    assert by_uid["day"].all_day and by_uid["day"].starts_at == datetime(2026, 3, 3, 6, tzinfo=UTC)
    assert by_uid["day"].ends_at == datetime(2026, 3, 4, 6, tzinfo=UTC)
    assert by_uid["float"].starts_at == datetime(2026, 3, 2, 16, tzinfo=UTC)
    assert by_uid["float"].ends_at == datetime(2026, 3, 2, 16, 45, tzinfo=UTC)
    assert by_uid["float"].recurrence_id == "" and not by_uid["float"].all_day


def test_google_x_wr_timezone_export() -> None:
    text = cal("UID:g1\r\nDTSTART:20260302T100000\r\nDTEND:20260302T110000\r\nRRULE:FREQ=DAILY;COUNT=2",
               header="X-WR-TIMEZONE:Europe/Madrid\r\n")
    got = expand(text, window_start=W0, window_end=W1)
    assert sorted(o.starts_at for o in got.occurrences) == [datetime(2026, 3, 2, 9, tzinfo=UTC),
                                                           datetime(2026, 3, 3, 9, tzinfo=UTC)]


def test_malformed_events_are_skipped_and_described_the_rest_sync() -> None:
    text = cal("UID:ok\r\nDTSTART:20260302T100000Z\r\nDTEND:20260302T110000Z\r\nSTATUS:CANCELLED",
               "UID:nostart\r\nSUMMARY:no start",
               "UID:mars\r\nDTSTART;TZID=Mars/Olympus:20260302T100000",
               "UID:broken\r\nDTSTART:2026030",
               "SUMMARY:no uid\r\nDTSTART:20260302T100000Z")
    got = expand(text, window_start=W0, window_end=W1, source="work/abc.ics")
    assert [o.uid for o in got.occurrences] == ["ok"] and got.occurrences[0].status == "cancelled"
    assert got.uids == {"ok"}
    joined = "\n".join(got.skipped)
    assert "work/abc.ics UID nostart: no DTSTART" in joined
    assert "unknown TZID 'Mars/Olympus'" in joined and "UID broken: broken DTSTART" in joined
    assert "work/abc.ics: no UID" in joined


def test_garbage_is_described_not_raised() -> None:
    got = expand(b"this is not a calendar", window_start=W0, window_end=W1, source="x.ics")
    assert got.occurrences == [] and got.skipped and got.skipped[0].startswith("x.ics: not valid iCalendar")


def test_events_outside_the_window_are_left_out_but_the_uid_counts_as_described() -> None:
    got = expand(cal("UID:later\r\nDTSTART:20260601T100000Z"), window_start=W0, window_end=W1)
    assert got.occurrences == [] and got.uids == {"later"}


def test_clearly_outside_skips_only_plain_events_far_from_the_window() -> None:
    from connectors.ical import clearly_outside

    past = cal("UID:p\r\nDTSTART:20250102T100000Z\r\nDTEND:20250102T110000Z")
    near = cal("UID:n\r\nDTSTART;TZID=Pacific/Honolulu:20260228T230000\r\nDTEND;TZID=Pacific/Honolulu:20260228T235900")
    series = cal("UID:s\r\nDTSTART:20250102T100000Z\r\nDTEND:20250102T110000Z\r\nRRULE:FREQ=WEEKLY")
    later = cal("UID:l\r\nDTSTART;VALUE=DATE:20270101\r\nDTEND;VALUE=DATE:20270102")
    no_end = cal("UID:d\r\nDTSTART:20250102T100000Z\r\nDURATION:PT1H")
    assert clearly_outside(past, W0, W1) and clearly_outside(later.encode(), W0, W1)
    assert not clearly_outside(near, W0, W1) and not clearly_outside(series, W0, W1)
    assert not clearly_outside(no_end, W0, W1)
    assert expand(near, window_start=W0, window_end=W1).occurrences  # the margin kept it: it is inside
    ended = cal("UID:e\r\nDTSTART:20250102T100000Z\r\nDTEND:20250102T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=10")
    monthly = cal("UID:m\r\nDTSTART:20250102T100000Z\r\nDTEND:20250102T110000Z\r\nRRULE:FREQ=MONTHLY;COUNT=3")
    assert clearly_outside(ended, W0, W1) and not clearly_outside(monthly, W0, W1)


def test_clearly_outside_never_hides_an_occurrence_the_library_finds() -> None:
    """The text-only bound for simple series, checked against the expansion itself over many random rules."""
    import random

    from connectors.ical import clearly_outside

    rng = random.Random(20261122)
    days = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    checked = skipped = 0
    for _ in range(400):
        start = datetime(2025, 1, 1, rng.randrange(0, 24), tzinfo=UTC) + timedelta(days=rng.randrange(0, 500))
        length = timedelta(hours=rng.choice([1, 2, 30, 24 * 9]))
        parts = [f"FREQ={rng.choice(['DAILY', 'WEEKLY'])}", f"INTERVAL={rng.randrange(1, 4)}"]
        if parts[0] == "FREQ=WEEKLY" and rng.random() < 0.6:
            parts.append("BYDAY=" + ",".join(rng.sample(days, rng.randrange(1, 4))))
        if rng.random() < 0.5:
            parts.append(f"COUNT={rng.randrange(1, 60)}")
        else:
            parts.append(f"UNTIL={(start + timedelta(days=rng.randrange(0, 300))):%Y%m%dT%H%M%SZ}")
        text = cal(f"UID:r\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{start + length:%Y%m%dT%H%M%SZ}\r\n"
                   f"RRULE:{';'.join(parts)}")
        if clearly_outside(text, W0, W1):
            skipped += 1
            assert expand(text, window_start=W0, window_end=W1).occurrences == [], text
        checked += 1
    assert skipped > 50 and checked == 400  # the bound did skip many, and never one with an occurrence


def test_series_that_would_explode_are_skipped_and_described() -> None:
    text = cal("UID:sec\r\nDTSTART:20260302T100000Z\r\nRRULE:FREQ=SECONDLY",
               "UID:hourly\r\nDTSTART:20260302T100000Z\r\nDTEND:20260302T101000Z\r\nRRULE:FREQ=HOURLY",
               "UID:ok\r\nDTSTART:20260302T100000Z\r\nRRULE:FREQ=DAILY;COUNT=2")
    got = expand(text, window_start=W0, window_end=datetime(2027, 1, 1, tzinfo=UTC), source="x.ics")
    assert {o.uid for o in got.occurrences} == {"ok"}
    assert any("UID sec: repeats every second" in s for s in got.skipped)
    assert any("UID hourly:" in s and "occurrences in the window" in s for s in got.skipped)
