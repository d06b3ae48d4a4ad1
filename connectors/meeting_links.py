"""Find the video-meeting link of an event in whatever text the provider gave us.

Providers put the link in different places: Google in ``conferenceData``, Graph in ``onlineMeeting.joinUrl``, and
everyone (CalDAV included) in the location or the description. Callers pass those texts in order of trust
(conference data first); the first text that holds a known meeting URL wins, so a structured join URL is never
overridden by a link someone pasted into the description.
"""
from __future__ import annotations

import re

# One pattern per service; hosts are matched case-insensitively and must be followed by a path that identifies a
# meeting, so a bare "zoom.us" homepage link in a signature is not taken for a meeting.
_SERVICES: tuple[tuple[str, str], ...] = (
    ("zoom", r"https://(?:[a-z0-9-]+\.)*zoom\.(?:us|com)/(?:j|my|w|s|wc/join)/[^\s<>\"']+"),
    ("zoom_gov", r"https://(?:[a-z0-9-]+\.)*zoomgov\.com/(?:j|my|w|s)/[^\s<>\"']+"),
    ("teams", r"https://teams\.(?:microsoft|live)\.com/(?:l/meetup-join|meet|l/meet)/[^\s<>\"']+"),
    ("meet", r"https://meet\.google\.com/[a-z]{3,4}-[a-z]{3,4}-[a-z]{3,4}(?:\?[^\s<>\"']*)?"),
    ("webex", r"https://(?:[a-z0-9-]+\.)*webex\.com/(?:meet/|join/|[a-z0-9-]+/j\.php\?|[a-z0-9-]+/url\.php\?)[^\s<>\"']+"),
    ("whereby", r"https://(?:[a-z0-9-]+\.)?whereby\.com/[a-z0-9][a-z0-9_-]*[^\s<>\"']*"),
    ("jitsi", r"https://(?:meet\.jit\.si|8x8\.vc|jitsi\.[a-z0-9.-]+)/[^\s<>\"']+"),
)
_PATTERN = re.compile("|".join(f"(?:{pattern})" for _, pattern in _SERVICES), re.IGNORECASE)
# Characters that end a sentence or close markup/brackets rather than belong to the URL.
_TRAILING = ".,;:!?)]}>'\""


def find_meeting_link(*texts: str | None) -> str:
    """The first meeting URL found in ``texts`` (checked in the order given), or "" when there is none.

    ``None`` and empty texts are ignored. HTML descriptions work too: the URL stops at a quote or angle bracket,
    and ``&amp;`` is unescaped so the link can be clicked as-is.
    """
    for text in texts:
        if not text:
            continue
        match = _PATTERN.search(text)
        if match:
            url = match.group(0).replace("&amp;", "&").rstrip(_TRAILING)
            return url
    return ""


def meeting_service(url: str) -> str:
    """The service name ("zoom", "teams", "meet", "webex", "whereby", "jitsi") of a link, or "" if unknown."""
    for name, pattern in _SERVICES:
        if re.fullmatch(pattern, url, re.IGNORECASE):
            return name.removesuffix("_gov")
    return ""
