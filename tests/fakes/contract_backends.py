"""Contract-suite backends for Google and Outlook: the real connectors against the local fakes, and the fakes'
admin calls as the out-of-band edits (what the owner's phone would do). Registered in tests/contract/conftest.py."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterator

import pytest

from connectors.google import GoogleConnector
from connectors.http_retry import MailboxLimiter, Retrier
from connectors.outlook import OutlookConnector
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.fakes.graph import FakeGraph, sign_in


def google_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    from tests.contract.conftest import Backend

    with FakeGoogleCalendar() as fake:
        cal = "primary@example.com"
        ids: dict[str, str] = {}
        starts: dict[str, datetime] = {}

        def add(key: str, start: datetime, end: datetime, *, attendees: tuple[str, ...] = (), title: str = "Sesión",
                weekly_count: int = 0) -> None:
            rule = [f"RRULE:FREQ=WEEKLY;COUNT={weekly_count}"] if weekly_count else None
            ids[key] = fake.add_event(cal, title, start, end, attendees=list(attendees), recurrence=rule)
            starts[key] = start

        def override(key: str, index: int, start: datetime, end: datetime) -> None:
            fake.override_instance(cal, ids[key], starts[key] + timedelta(weeks=index), start=start, end=end)

        def invalidate(cursor: str) -> str:
            fake.invalidate_sync_tokens()
            return cursor

        connector = GoogleConnector(fake.issue_tokens(), client_id=fake.client_id, client_secret=fake.client_secret,
                                    api_endpoint=fake.api_endpoint, token_uri=fake.token_uri,
                                    retrier=Retrier(sleep=lambda s: None))
        yield Backend(name="google", connector=connector, calendar_id=cal, add=add,
                      move=lambda key, s, e: fake.update_event(cal, ids[key], start=s, end=e),
                      remove=lambda key: fake.delete_event(cal, ids[key]), override=override,
                      uid=lambda key: ids[key], invalidate=invalidate, extra={"fake": fake})
        connector.close()


def outlook_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    from tests.contract.conftest import Backend

    with FakeGraph() as fake:
        cal = fake.default_calendar()
        ids: dict[str, str] = {}
        occurrences: dict[str, list[str]] = {}

        def add(key: str, start: datetime, end: datetime, *, attendees: tuple[str, ...] = (), title: str = "Sesión",
                weekly_count: int = 0) -> None:
            if weekly_count:
                ids[key], occurrences[key] = fake.add_series(cal, title, start, end - start, weekly_count,
                                                             attendees=attendees)
            else:
                ids[key] = fake.add_event(cal, title, start, end, attendees=attendees)

        def invalidate(cursor: str) -> str:
            fake.invalidate_delta_tokens()
            return cursor

        connector = OutlookConnector(sign_in(fake), client_id=fake.client_id, client_secret=fake.client_secret,
                                     authority=fake.authority, graph_url=fake.graph_url, session=fake.session(),
                                     limiter=MailboxLimiter(), retrier=Retrier(sleep=lambda s: None))
        yield Backend(name="outlook", connector=connector, calendar_id=cal, add=add,
                      move=lambda key, s, e: fake.update_event(cal, ids[key], start=s, end=e),
                      remove=lambda key: fake.delete_event(cal, ids[key]),
                      override=lambda key, i, s, e: fake.update_event(cal, occurrences[key][i], start=s, end=e),
                      uid=lambda key: ids[key], invalidate=invalidate, extra={"fake": fake})
        connector.close()
