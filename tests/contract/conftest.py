"""The contract suite's one fixture, ``backend``: a connector plus a way to change its calendar behind its back.

Every test in ``tests/contract/`` runs once per entry of ``FACTORIES``. To add a provider, write a factory
(a generator taking the pytest ``request`` and yielding a ``Backend``) and add it to ``FACTORIES``: for Google and
Outlook that means the real client library pointed at the local fake server, and the fake's own admin calls for
the ``add`` / ``move`` / ``remove`` / ``override`` / ``invalidate`` operations (as the owner's phone would make).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest

from connectors.base import CalendarConnector

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
WINDOW = (T0 - timedelta(days=1), T0 + timedelta(days=90))
OWNER = "lumen@example.com"


@dataclass
class Backend:
    """A connector and its calendar, with out-of-band edits. ``key`` is a test-local name for an event."""

    name: str
    connector: CalendarConnector
    calendar_id: str
    add: Callable[..., None]  # add(key, start, end, *, attendees=(), title="", weekly_count=0)
    move: Callable[[str, datetime, datetime], None]
    remove: Callable[[str], None]
    override: Callable[[str, int, datetime, datetime], None]  # move occurrence #index of a weekly series
    uid: Callable[[str], str]  # the connector's id (EventOccurrence.uid) of an event added by key
    invalidate: Callable[[str], str]  # a cursor the provider now refuses as expired
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ CalDAV


def caldav_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    from connectors.caldav import CalDAVConnector
    from tests.sync_support import ics, override

    server = request.getfixturevalue("radicale")
    cal_url = server.make_calendar(f"contract-{uuid.uuid4().hex[:10]}")
    events: dict[str, dict[str, Any]] = {}

    def write(key: str) -> None:
        e = events[key]
        extra = override(key, e["start"] + timedelta(weeks=e["ov"][0]), e["ov"][1], e["ov"][2],
                         attendees=e["attendees"]) if e.get("ov") else ""
        rrule = f"FREQ=WEEKLY;COUNT={e['weekly_count']}" if e["weekly_count"] else ""
        server.put(cal_url, f"{key}.ics", ics(key, e["start"], e["end"], title=e["title"], attendees=e["attendees"],
                                              rrule=rrule, overrides=extra))

    def add(key: str, start: datetime, end: datetime, *, attendees: tuple[str, ...] = (), title: str = "Sesión",
            weekly_count: int = 0) -> None:
        events[key] = {"start": start, "end": end, "attendees": attendees, "title": title,
                       "weekly_count": weekly_count}
        write(key)

    def move(key: str, start: datetime, end: datetime) -> None:
        events[key].update(start=start, end=end)
        write(key)

    def over(key: str, index: int, start: datetime, end: datetime) -> None:
        events[key]["ov"] = (index, start, end)
        write(key)

    connector = CalDAVConnector.from_credentials(
        {"url": server.url, "username": server.username, "password": server.password})
    yield Backend(name="caldav", connector=connector, calendar_id=cal_url, add=add, move=move,
                  remove=lambda key: server.delete(cal_url, f"{key}.ics"), override=over,
                  uid=lambda key: f"{key}.ics",
                  invalidate=lambda cursor: '{"m":"sync","t":"http://radicale.org/ns/sync/0000expired"}')
    connector.close()


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Iterator[Backend]]] = {
    "caldav": caldav_backend,
}

# Google and Outlook: the real client libraries against the local fakes (tests/fakes/contract_backends.py)
from tests.fakes.contract_backends import google_backend, outlook_backend  # noqa: E402

FACTORIES.update(google=google_backend, outlook=outlook_backend)


@pytest.fixture(params=sorted(FACTORIES))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from FACTORIES[request.param](request)
