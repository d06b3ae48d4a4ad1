"""Which start times an owner can offer: pure functions over working hours, busy time and the clock.

Everything is computed on absolute instants (UTC). Working hours are wall-clock times in the *owner's* zone, so each
day's windows are converted to UTC through ``zoneinfo`` one day at a time: a 09:00-18:00 day stays 09:00-18:00 on
the wall across a daylight-saving change, and a window that starts inside a skipped hour (Santiago skips 00:00-01:00
in September) begins at the first instant that exists. Candidate starts step through each window in absolute
time, so a slot is always exactly ``duration`` long. Slots are shown in the *client's* zone (``days_for_client``),
which may shift them across midnight into another date.

No database, no network, no clock: the web pages, ``workflows.booking`` (the re-check at the moment of booking)
and ``bench/slots.py`` all call the same functions.
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS: dict[str, list[list[str]]] = {
    day: [["09:00", "13:00"], ["14:00", "18:00"]] for day in WEEKDAYS[:5]
}

Window = tuple[time, time | None]  # end None means midnight at the end of the day ("24:00")


class RulesError(ValueError):
    """Booking settings that cannot be used; the message names the field and shows a valid value."""


def _parse_clock(field_name: str, raw: str) -> time | None:
    """``"09:30"`` → time(9, 30); ``"24:00"`` → None (end of day)."""
    if raw == "24:00":
        return None
    try:
        hh, mm = raw.split(":")
        return time(int(hh), int(mm))
    except (ValueError, AttributeError):
        raise RulesError(f"{field_name}: {raw!r} is not a time of day; expected HH:MM such as \"09:30\"") from None


@dataclass(frozen=True)
class BookingRules:
    """An owner's bookable time: weekly windows (gaps between them are breaks), days off, notice and horizon."""

    timezone: str = "UTC"
    weekly: tuple[tuple[Window, ...], ...] = ()  # 7 entries, Monday first
    days_off: frozenset[date] = frozenset()
    min_notice: timedelta = timedelta(hours=2)
    horizon: timedelta = timedelta(days=60)
    step: timedelta = timedelta(minutes=30)

    @classmethod
    def from_dict(cls, tz: str, data: Mapping[str, Any] | None) -> "BookingRules":
        """Build from the owner's stored settings (``BookingSettings.rules``); missing keys take the defaults."""
        data = data or {}
        try:
            ZoneInfo(tz)
        except (KeyError, ValueError):
            raise RulesError(f"time zone {tz!r} is unknown; expected an IANA name such as Europe/Madrid") from None
        hours = data.get("hours", DEFAULT_HOURS)
        weekly: list[tuple[Window, ...]] = []
        for day in WEEKDAYS:
            windows: list[Window] = []
            for pair in hours.get(day, []):
                if len(pair) != 2:
                    raise RulesError(f"hours.{day}: {pair!r} should be a [start, end] pair such as [\"09:00\", \"13:00\"]")
                start = _parse_clock(f"hours.{day}", pair[0])
                end = _parse_clock(f"hours.{day}", pair[1])
                if start is None or (end is not None and end <= start):
                    raise RulesError(f"hours.{day}: {pair[0]}-{pair[1]} ends before it starts")
                windows.append((start, end))
            windows.sort(key=lambda w: w[0])
            weekly.append(tuple(windows))
        try:
            days_off = frozenset(date.fromisoformat(d) for d in data.get("days_off", []))
        except ValueError as exc:
            raise RulesError(f"days_off: {exc}; expected dates such as \"2026-12-25\"") from None
        step = int(data.get("step_minutes", 30))
        if step < 5:
            raise RulesError(f"step_minutes={step} is too small; expected 5 or more")
        return cls(timezone=tz, weekly=tuple(weekly), days_off=days_off,
                   min_notice=timedelta(minutes=int(data.get("min_notice_minutes", 120))),
                   horizon=timedelta(days=int(data.get("horizon_days", 60))),
                   step=timedelta(minutes=step))

    def to_dict(self) -> dict[str, Any]:
        def clock(t: time | None) -> str:
            return "24:00" if t is None else t.strftime("%H:%M")

        return {
            "hours": {day: [[clock(s), clock(e)] for s, e in self.weekly[i]] for i, day in enumerate(WEEKDAYS)
                      if self.weekly and self.weekly[i]},
            "days_off": sorted(d.isoformat() for d in self.days_off),
            "min_notice_minutes": int(self.min_notice.total_seconds() // 60),
            "horizon_days": self.horizon.days,
            "step_minutes": int(self.step.total_seconds() // 60),
        }


@dataclass(frozen=True)
class SlotShape:
    """What one booking occupies: its length and the buffers kept free before and after it."""

    duration: timedelta
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)


class Busy:
    """Busy intervals from every calendar, merged once and searched with bisection.

    Built once per request from all connectors' answers; ``overlaps`` is O(log n), so a week of candidates against
    thousands of events costs well under a millisecond.
    """

    def __init__(self, intervals: Iterable[tuple[datetime, datetime]]) -> None:
        merged: list[list[datetime]] = []
        for start, end in sorted((s, e) for s, e in intervals if e > s):
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1][1] = end
            else:
                merged.append([start, end])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True when any busy interval intersects [start, end) (touching ends do not count)."""
        i = bisect.bisect_left(self.starts, end) - 1
        return i >= 0 and self.ends[i] > start

    def __len__(self) -> int:
        return len(self.starts)


def _utc(local: datetime) -> datetime:
    """A wall-clock time in its zone to UTC; a time skipped by a DST jump maps to the first instant after the jump
    (``fold=0`` uses the offset from before the change, which lands after the gap)."""
    return local.astimezone(timezone.utc)


def working_windows(rules: BookingRules, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The owner's working windows that intersect [start, end), as UTC intervals, in order."""
    zone = ZoneInfo(rules.timezone)
    if not rules.weekly:
        return []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    out: list[tuple[datetime, datetime]] = []
    while day <= last:
        if day not in rules.days_off:
            for w_start, w_end in rules.weekly[day.weekday()]:
                a = _utc(datetime.combine(day, w_start, tzinfo=zone))
                b = _utc(datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) if w_end is None
                         else datetime.combine(day, w_end, tzinfo=zone))
                if b > start and a < end and b > a:
                    out.append((a, b))
        day += timedelta(days=1)
    return out


def _bookable_range(rules: BookingRules, now: datetime, start: datetime | None,
                    end: datetime | None) -> tuple[datetime, datetime]:
    earliest = now + rules.min_notice
    latest = now + rules.horizon
    lo = max(earliest, start) if start else earliest
    hi = min(latest, end) if end else latest
    return lo, hi


def free_slots(rules: BookingRules, shape: SlotShape, busy: Busy, *, now: datetime,
               start: datetime | None = None, end: datetime | None = None,
               limit: int | None = None) -> list[datetime]:
    """Start instants (UTC) of every free slot whose start lies in [start, end), inside notice and horizon.

    A slot is offered when the whole appointment fits inside one working window, and the appointment plus its
    buffers overlaps no busy interval. Candidates step from each window's start by ``rules.step``.
    """
    lo, hi = _bookable_range(rules, now, start, end)
    if hi <= lo:
        return []
    out: list[datetime] = []
    for w_start, w_end in working_windows(rules, lo, hi + shape.duration):
        slot = w_start
        if slot < lo:  # jump to the first aligned candidate at or after lo
            steps = -(-(lo - slot) // rules.step)
            slot = w_start + steps * rules.step
        while slot + shape.duration <= w_end and slot < hi:
            if not busy.overlaps(slot - shape.buffer_before, slot + shape.duration + shape.buffer_after):
                out.append(slot)
                if limit is not None and len(out) >= limit:
                    return out
            slot += rules.step
    return out


def is_bookable(rules: BookingRules, shape: SlotShape, busy: Busy, starts_at: datetime, *, now: datetime) -> bool:
    """The re-check at the moment of booking: is ``starts_at`` still one of the offered slots?"""
    day = timedelta(days=1)
    return starts_at in free_slots(rules, shape, busy, now=now, start=starts_at - day, end=starts_at + day)


# ------------------------------------------------------------------------------------------------ presentation


@dataclass(frozen=True)
class ShownSlot:
    starts_at: datetime  # UTC
    label: str  # wall-clock time in the client's zone, in the client's language
    iso: str  # the value posted back by the form
    preferred: bool = False


@dataclass(frozen=True)
class ShownDay:
    day: date
    label: str
    slots: tuple[ShownSlot, ...] = field(default_factory=tuple)


@lru_cache(maxsize=4096)
def _time_label(hour: int, minute: int, locale: str) -> str:
    """Babel's short time for a wall-clock time; cached, since a page shows the same few dozen times."""
    return format_time(time(hour, minute), format="short", locale=locale)


@lru_cache(maxsize=4096)
def _date_label(day: date, locale: str) -> str:
    return format_date(day, format="full", locale=locale)


def days_for_client(slots: Sequence[datetime], client_tz: str, locale: str,
                    preferred: Iterable[datetime] = ()) -> list[ShownDay]:
    """Group slots by the *client's* local date, labelled in the client's language."""
    zone = ZoneInfo(client_tz)
    marked = set(preferred)
    days: dict[date, list[ShownSlot]] = {}
    for s in slots:
        local = s.astimezone(zone)
        days.setdefault(local.date(), []).append(ShownSlot(
            starts_at=s, label=_time_label(local.hour, local.minute, locale),
            iso=s.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), preferred=s in marked))
    return [ShownDay(day=d, label=_date_label(d, locale), slots=tuple(v)) for d, v in sorted(days.items())]


def preferred_slots(slots: Sequence[datetime], history: Iterable[datetime], client_tz: str, *,
                    count: int = 3) -> list[datetime]:
    """The client's usual times first: up to ``count`` slots at the local hours (and weekdays) they book most.

    Scores a slot by how often past appointments started at the same local hour (weekday match counts double, a
    neighbouring hour counts half). Slots with no match are never "preferred"; the earliest wins a tie.
    """
    zone = ZoneInfo(client_tz)
    past = [h.astimezone(zone) for h in history]
    if not past:
        return []
    by_hour = Counter(p.hour for p in past)
    by_day_hour = Counter((p.weekday(), p.hour) for p in past)
    scored: list[tuple[float, datetime]] = []
    for s in slots:
        local = s.astimezone(zone)
        score = (by_hour[local.hour] + 2 * by_day_hour[(local.weekday(), local.hour)]
                 + 0.5 * (by_hour[(local.hour - 1) % 24] + by_hour[(local.hour + 1) % 24]))
        if score > 0:
            scored.append((score, s))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return sorted(s for _, s in scored[:count])
