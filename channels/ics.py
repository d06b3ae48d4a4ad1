"""An iCalendar invitation (RFC 5546 iTIP) attached to messages that announce a new or moved time, or a
cancellation, so the client's calendar app offers "add" / "update" / "remove" with one tap.

The UID is stable per appointment and SEQUENCE grows with each move, which is what calendar apps use to replace the
earlier invitation instead of adding a second event.
"""
from __future__ import annotations

from datetime import datetime, timezone

from icalendar import Calendar, Event, vCalAddress, vText

from channels.base import Attachment

# Message kinds (workflows/kinds) that announce a time, and the iTIP method they carry.
ICS_KINDS = {"confirm_request": "REQUEST", "moved": "REQUEST", "booking_confirmed": "REQUEST",
             "cancel_thanks": "CANCEL"}


def invitation(*, method: str, uid: str, sequence: int, starts_at: datetime, ends_at: datetime, summary: str,
               organizer_email: str, organizer_name: str, attendee_email: str, location: str = "",
               url: str = "", now: datetime | None = None) -> Attachment:
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported iTIP method {method!r}; expected REQUEST or CANCEL")
    cal = Calendar()
    cal.add("prodid", "-//Reagenda//reagenda//ES")
    cal.add("version", "2.0")
    cal.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", (now or datetime.now(timezone.utc)).astimezone(timezone.utc))
    event.add("dtstart", starts_at.astimezone(timezone.utc))
    event.add("dtend", ends_at.astimezone(timezone.utc))
    event.add("summary", summary)
    if location:
        event.add("location", location)
    if url:
        event.add("url", url)
    organizer = vCalAddress(f"mailto:{organizer_email}")
    organizer.params["cn"] = vText(organizer_name or organizer_email)
    event["organizer"] = organizer
    attendee = vCalAddress(f"mailto:{attendee_email}")
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("NEEDS-ACTION" if method == "REQUEST" else "DECLINED")
    attendee.params["rsvp"] = vText("FALSE")
    event.add("attendee", attendee, encode=0)
    event.add("status", "CONFIRMED" if method == "REQUEST" else "CANCELLED")
    cal.add_component(event)
    return Attachment(filename="invite.ics" if method == "REQUEST" else "cancel.ics",
                      content_type=f"text/calendar; method={method}", data=cal.to_ical())
