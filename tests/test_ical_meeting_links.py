"""Meeting links found in the places providers put them (conference data, location, HTML descriptions)."""
from __future__ import annotations

import pytest

from connectors.meeting_links import find_meeting_link, meeting_service


@pytest.mark.parametrize("text, expected, service", [
    ("Join: https://us02web.zoom.us/j/85412345678?pwd=abcDEF123.", "https://us02web.zoom.us/j/85412345678?pwd=abcDEF123", "zoom"),
    ('<a href="https://teams.microsoft.com/l/meetup-join/19%3ameeting_X%40thread.v2/0?context=%7b%7d">Join</a>',
     "https://teams.microsoft.com/l/meetup-join/19%3ameeting_X%40thread.v2/0?context=%7b%7d", "teams"),
    ("Video: https://meet.google.com/abc-defg-hij", "https://meet.google.com/abc-defg-hij", "meet"),
    ("(https://acme.webex.com/meet/ana)", "https://acme.webex.com/meet/ana", "webex"),
    ("https://acme.webex.com/acme/j.php?MTID=m123&amp;x=1", "https://acme.webex.com/acme/j.php?MTID=m123&x=1", "webex"),
    ("Sala: https://whereby.com/consulta-ana", "https://whereby.com/consulta-ana", "whereby"),
    ("https://meet.jit.si/ReagendaSesion42, gracias", "https://meet.jit.si/ReagendaSesion42", "jitsi"),
])
def test_each_service_is_found_and_named(text: str, expected: str, service: str) -> None:
    assert find_meeting_link(text) == expected
    assert meeting_service(expected) == service


def test_first_text_with_a_link_wins_and_empty_texts_are_ignored() -> None:
    assert find_meeting_link(None, "", "https://meet.google.com/abc-defg-hij",
                             "https://zoom.us/j/1") == "https://meet.google.com/abc-defg-hij"


def test_plain_homepages_and_other_urls_are_not_meeting_links() -> None:
    assert find_meeting_link("Visit https://zoom.us or https://example.com/j/1 — Calle Mayor 3") == ""
