"""The pure decisions of the sync engine, and credentials at rest."""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from connectors.base import Attendee, EventOccurrence
from store.crypto import CredentialsUnreadable, decrypt_credentials, encrypt_credentials
from workflows.sync import BACKOFF_MAX_S, backoff_delay, calendar_state_of, client_email_for

T = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
OWNER = {"lumen@example.com"}


def occ(*attendees: Attendee, organizer: str = "lumen@example.com", title: str = "Sesión", description: str = "",
        status: str = "confirmed") -> EventOccurrence:
    return EventOccurrence(uid="u", recurrence_id="", starts_at=T, ends_at=T, title=title, description=description,
                           attendees=attendees, organizer_email=organizer, status=status)


def test_first_attendee_who_is_not_the_owner_is_the_client() -> None:
    e = occ(Attendee("Lumen@Example.com"), Attendee("Marta@Example.com"), Attendee("luis@example.com"))
    assert client_email_for(e, OWNER) == "marta@example.com"


def test_owner_only_events_are_busy_time() -> None:
    assert client_email_for(occ(), OWNER) == ""
    assert client_email_for(occ(Attendee("lumen@example.com")), OWNER) == ""


def test_an_organizer_who_invited_the_owner_is_the_client() -> None:
    assert client_email_for(occ(Attendee("lumen@example.com"), organizer="eva@example.com"), OWNER) == "eva@example.com"


def test_title_prefix_rule_finds_the_client_in_the_description() -> None:
    e = occ(title="Cita: Marta", description="Cliente: marta@example.com, tel 600")
    assert client_email_for(e, OWNER, ("cita:",)) == "marta@example.com"
    assert client_email_for(e, OWNER, ()) == ""
    assert client_email_for(occ(title="Cita: sin correo"), OWNER, ("Cita:",)) == ""


@pytest.mark.parametrize("status, partstat, expected", [
    ("confirmed", "accepted", "active"), ("confirmed", "declined", "declined"),
    ("cancelled", "accepted", "cancelled"), ("tentative", "needs-action", "active"),
])
def test_calendar_state(status: str, partstat: str, expected: str) -> None:
    e = occ(Attendee("marta@example.com", status=partstat), Attendee("luis@example.com", status="declined"),
            status=status)
    assert calendar_state_of(e, "marta@example.com") == expected


def test_backoff_grows_with_jitter_is_capped_and_honours_retry_after() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, rng=rng) for n in range(1, 12)]
    assert 30 <= delays[0] <= 60 and 60 <= delays[1] <= 120
    assert all(d <= BACKOFF_MAX_S for d in delays) and delays[-1] >= BACKOFF_MAX_S / 2
    assert backoff_delay(1, retry_after_s=900, rng=rng) == 900


def test_credentials_round_trip_and_refuse_another_key() -> None:
    secret = {"url": "https://cloud.example.com/", "username": "ana", "password": "app-pass-1234"}
    blob = encrypt_credentials("key-one", secret)
    assert "app-pass-1234" not in blob and decrypt_credentials("key-one", blob) == secret
    assert decrypt_credentials("key-one", "") == {}
    with pytest.raises(CredentialsUnreadable, match="reconnect the calendar"):
        decrypt_credentials("key-two", blob)
