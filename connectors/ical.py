"""iCalendar text → ``EventOccurrence`` rows, expanded over a window, for every provider that speaks ICS.

CalDAV objects, Google ``.ics`` exports and Outlook-generated invites all arrive here. The hard parts are left to
the libraries made for them: ``icalendar`` parses (and maps Windows zone names such as "W. Europe Standard Time"
to IANA zones), ``x-wr-timezone`` turns Google's calendar-wide X-WR-TIMEZONE into real TZIDs, and
``recurring-ical-events`` expands RRULE / RDATE / EXDATE and applies RECURRENCE-ID overrides. No RRULE logic is
written here.

A malformed event (unparsable text, missing DTSTART or UID, an unknown TZID, a broken property) is skipped and
described in ``Expanded.skipped``; the other events of the same text are still returned. Nothing here raises on
bad input.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events
import x_wr_timezone

from connectors.base import Attendee, EventOccurrence
from connectors.meeting_links import find_meeting_link

log = logging.getLogger(__name__)

# Properties that may carry a join URL, most structured first (RFC 7986 CONFERENCE, Google, Microsoft).
MAX_OCCURRENCES = 5000  # per event inside one window; more is a broken or hostile series, skipped and described
_LINK_PROPERTIES = ("CONFERENCE", "X-GOOGLE-CONFERENCE", "X-MICROSOFT-SKYPETEAMSMEETINGURL",
                    "X-MICROSOFT-ONLINEMEETINGURL", "URL", "LOCATION", "DESCRIPTION", "X-ALT-DESC")
_TIME_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "DUE")


@dataclass
class Expanded:
    """What one ICS text yielded: occurrences inside the window, the UIDs fully described (every occurrence of
    these UIDs inside the window is in ``occurrences``), and human-readable descriptions of what was skipped."""

    occurrences: list[EventOccurrence] = field(default_factory=list)
    uids: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)

    def extend(self, other: "Expanded") -> None:
        self.occurrences.extend(other.occurrences)
        self.uids |= other.uids
        self.skipped.extend(other.skipped)


def zone(name: str | None) -> tzinfo:
    """The zone for floating times and all-day dates; UTC when the name is empty or unknown."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r for floating times; using UTC", name)
        return timezone.utc


def to_utc(value: date | datetime, default_tz: tzinfo) -> datetime:
    """An aware UTC datetime: all-day dates start at midnight and floating times are read in ``default_tz``."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    return value.astimezone(timezone.utc)


def recurrence_key(value: date | datetime, default_tz: tzinfo) -> str:
    """The stable id of one occurrence of a series: its original start in UTC, ISO 8601."""
    return to_utc(value, default_tz).isoformat()


_DTSTART = re.compile(r"^DTSTART(?:;[^:\r\n]*)?:(\d{8})", re.MULTILINE)
_DTEND = re.compile(r"^DTEND(?:;[^:\r\n]*)?:(\d{8})", re.MULTILINE)
_MARGIN = timedelta(days=2)  # wider than any zone offset, so a date compare without zones is safe


def clearly_outside(data: str | bytes, window_start: datetime, window_end: datetime) -> bool:
    """True when ``data`` is one event whose dates lie well outside the window, judged from the text alone. Most
    of a long-used calendar is its past; this lets a sync skip parsing it. A series counts when its RRULE is
    simple enough to bound its last occurrence (see ``_last_start``). Anything unusual (RDATE, overrides,
    several events, folded or missing dates) answers False and gets the full parse."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if "RDATE" in text or "RECURRENCE-ID" in text or text.count("BEGIN:VEVENT") != 1:
        return False
    start, end = _DTSTART.findall(text), _DTEND.findall(text)
    if len(start) != 1 or len(end) != 1:
        return False
    try:
        first = datetime.strptime(start[0], "%Y%m%d").date()
        last = datetime.strptime(end[0], "%Y%m%d").date()
    except ValueError:
        return False
    if "RRULE" in text:
        rules = _RRULE.findall(text)
        last_start = _last_start(rules[0], first) if len(rules) == 1 and text.count("RRULE") == 1 else None
        if last_start is None:
            return False
        last = last_start + (last - first)
    return last + _MARGIN < window_start.date() or first - _MARGIN > window_end.date()


_RRULE = re.compile(r"^RRULE:([^\r\n]*)", re.MULTILINE)
_SIMPLE_PARTS = {"FREQ", "COUNT", "UNTIL", "INTERVAL", "BYDAY", "WKST"}
_WEEKDAYS = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"}


def _last_start(rule: str, first: date) -> date | None:
    """A date no occurrence of this series starts after, for the rules where that needs no expansion: DAILY or
    WEEKLY (with plain BYDAY days), with UNTIL or COUNT. Every period of such a rule holds an occurrence, except
    perhaps the first (a DTSTART off the BYDAY days), so COUNT + 1 periods always suffice. Any other rule: None,
    and the expansion library decides."""
    try:
        parts = dict(part.split("=", 1) for part in rule.strip().upper().split(";"))
    except ValueError:
        return None
    if not set(parts) <= _SIMPLE_PARTS:
        return None
    period = {"DAILY": 1, "WEEKLY": 7}.get(parts.get("FREQ", ""))
    if period is None:
        return None
    if "BYDAY" in parts and (period != 7 or not set(parts["BYDAY"].split(",")) <= _WEEKDAYS):
        return None
    try:
        interval = int(parts.get("INTERVAL", "1"))
        if interval < 1:
            return None
        if "UNTIL" in parts:
            return datetime.strptime(parts["UNTIL"][:8], "%Y%m%d").date()
        if "COUNT" in parts:
            return first + timedelta(days=(int(parts["COUNT"]) + 1) * interval * period)
    except (ValueError, OverflowError):
        return None
    return None  # no end: it reaches the window


def expand(data: str | bytes, *, window_start: datetime, window_end: datetime, default_tz: str | None = None,
           etag: str = "", source: str = "") -> Expanded:
    """Parse one ICS text and expand every event in it to occurrences overlapping [window_start, window_end).

    ``source`` names where the text came from (calendar and href) for the skip descriptions and the log.
    """
    out = Expanded()
    tz = zone(default_tz)
    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "skip this text", never crash the sync
        out.skipped.append(f"{source or 'calendar data'}: not valid iCalendar ({_short(exc)})")
        log.warning("skipped %s: not valid iCalendar (%s)", source or "calendar data", _short(exc))
        return out
    if isinstance(cal, list):  # several VCALENDARs concatenated
        for one in cal:
            out.extend(_expand_calendar(one, window_start, window_end, tz, etag, source))
        return out
    return _expand_calendar(cal, window_start, window_end, tz, etag, source)


def _expand_calendar(cal: icalendar.Calendar, start: datetime, end: datetime, tz: tzinfo, etag: str,
                     source: str) -> Expanded:
    out = Expanded()
    groups: dict[str, list[icalendar.Event]] = {}
    bad: set[str] = set()  # one broken part spoils the whole series: it is skipped whole, and said so
    for event in cal.walk("VEVENT"):
        uid = str(event.get("UID", "")).strip()
        problem = _problem(event) if uid else "no UID"
        if problem:
            where = f"{source} UID {uid}".strip() if uid else source or "calendar data"
            out.skipped.append(f"{where}: {problem}")
            log.warning("skipped event %s: %s", where, problem)
            bad.add(uid)
            continue
        groups.setdefault(uid, []).append(event)
    groups = {uid: events for uid, events in groups.items() if uid not in bad}
    if not groups:
        return out
    if "X-WR-TIMEZONE" in cal:
        try:
            cal = x_wr_timezone.to_standard(cal)
        except Exception as exc:  # noqa: BLE001
            out.skipped.append(f"{source}: X-WR-TIMEZONE {cal.get('X-WR-TIMEZONE')!s} not usable ({_short(exc)})")
            return out
        groups = {}
        for event in cal.walk("VEVENT"):
            uid = str(event.get("UID", "")).strip()
            if uid and uid not in bad:
                groups.setdefault(uid, []).append(event)
    timezones = cal.walk("VTIMEZONE")
    for uid, events in groups.items():
        try:
            if len(events) == 1 and not _is_series(events):
                # A plain event is its own only occurrence: no expansion library needed to see if it overlaps.
                single = _occurrence(uid, events[0], tz, etag, is_series=False)
                occurrences = [single] if _overlaps(single, start, end) else []
            else:
                too_fine = _too_frequent(events)
                if too_fine:
                    out.skipped.append(f"{source} UID {uid}: repeats {too_fine}, which no appointment does")
                    log.warning("skipped event %s UID %s: repeats %s", source, uid, too_fine)
                    continue
                sub = cal if len(groups) == 1 and not bad else _calendar_of(timezones, events)
                components = recurring_ical_events.of(sub).between(start, end)
                if len(components) > MAX_OCCURRENCES:
                    out.skipped.append(f"{source} UID {uid}: {len(components)} occurrences in the window "
                                       f"(more than {MAX_OCCURRENCES})")
                    log.warning("skipped event %s UID %s: %d occurrences", source, uid, len(components))
                    continue
                occurrences = [_occurrence(uid, component, tz, etag, is_series=True) for component in components]
        except Exception as exc:  # noqa: BLE001 - a series the library cannot expand is skipped, not fatal
            out.skipped.append(f"{source} UID {uid}: cannot expand ({_short(exc)})")
            log.warning("skipped event %s UID %s: cannot expand (%s)", source, uid, _short(exc))
            continue
        out.occurrences.extend(occurrences)
        out.uids.add(uid)
    return out


def _problem(event: icalendar.Event) -> str:
    """Why this VEVENT cannot be used, or "" when it can."""
    errors = getattr(event, "errors", None)
    if errors:
        name, message = errors[0]
        return f"broken {name} ({message})"
    if "DTSTART" not in event:
        return "no DTSTART"
    for name in _TIME_PROPERTIES:
        prop = event.get(name)
        if prop is None:
            continue
        try:
            value = prop.dt
        except Exception as exc:  # noqa: BLE001
            return f"broken {name} ({_short(exc)})"
        tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
        if tzid and isinstance(value, datetime) and value.tzinfo is None:
            return f"unknown TZID {tzid!r} in {name}"
    return ""


def _overlaps(occ: EventOccurrence, start: datetime, end: datetime) -> bool:
    """The same rule as recurring-ical-events: starts before the window ends, ends after it starts (an instant
    event counts when it falls inside)."""
    if occ.ends_at == occ.starts_at:
        return start <= occ.starts_at < end
    return occ.starts_at < end and occ.ends_at > start


def _too_frequent(events: list[icalendar.Event]) -> str:
    """"every second" / "every minute" for a series no calendar of appointments holds (a hostile or broken
    invite that would expand to millions of occurrences), else ""."""
    for event in events:
        for rule in _as_list(event.get("RRULE")):
            freq = rule.get("FREQ") if hasattr(rule, "get") else None
            freq = (freq[0] if isinstance(freq, list) and freq else freq) or ""
            if str(freq).upper() in ("SECONDLY", "MINUTELY"):
                return f"every {str(freq).lower().removesuffix('ly')}"
    return ""


def _is_series(events: list[icalendar.Event]) -> bool:
    return any("RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e for e in events)


def _calendar_of(timezones: Iterable[Any], events: list[icalendar.Event]) -> icalendar.Calendar:
    sub = icalendar.Calendar()
    for component in timezones:
        sub.add_component(component)
    for event in events:
        sub.add_component(event)
    return sub


def _occurrence(uid: str, c: icalendar.Event, tz: tzinfo, etag: str, *, is_series: bool) -> EventOccurrence:
    raw_start = c["DTSTART"].dt
    all_day = not isinstance(raw_start, datetime)
    starts_at = to_utc(raw_start, tz)
    if c.get("DTEND") is not None:
        ends_at = to_utc(c["DTEND"].dt, tz)
    elif c.get("DURATION") is not None:
        ends_at = starts_at + c["DURATION"].dt
    else:
        ends_at = starts_at + (timedelta(days=1) if all_day else timedelta(0))
    recurrence_id = ""
    if is_series:
        original = c["RECURRENCE-ID"].dt if c.get("RECURRENCE-ID") is not None else raw_start
        recurrence_id = recurrence_key(original, tz)
    organizer = _email(c.get("ORGANIZER"))
    attendees = tuple(_attendee(a, organizer) for a in _as_list(c.get("ATTENDEE")))
    texts = [_text(v) for name in _LINK_PROPERTIES for v in _as_list(c.get(name))]
    status = str(c.get("STATUS", "CONFIRMED")).lower()
    return EventOccurrence(
        uid=uid, recurrence_id=recurrence_id, starts_at=starts_at, ends_at=ends_at,
        title=_text(c.get("SUMMARY")), description=_text(c.get("DESCRIPTION")), location=_text(c.get("LOCATION")),
        meeting_link=find_meeting_link(*texts), attendees=attendees, organizer_email=organizer, all_day=all_day,
        status=status if status in ("confirmed", "tentative", "cancelled") else "confirmed", etag=etag,
    )


def _attendee(value: Any, organizer: str) -> Attendee:
    email = _email(value)
    params = getattr(value, "params", {})
    return Attendee(email=email, name=str(params.get("CN", "")), status=str(params.get("PARTSTAT", "NEEDS-ACTION")).lower(),
                    is_organizer=bool(organizer) and email == organizer)


def _email(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
