"""Requests per sync against the local Google Calendar and Microsoft Graph fakes (issue 3 target: 1 request for a
sync with no changes), through the real connectors and client libraries.

    .venv/bin/python bench/provider_requests.py --events 500

Loads N events (a tenth of them weekly series) into each fake, then counts API requests for the initial sync, a
no-change sync, and a sync after 1% of the events changed. Token requests are not API requests and are not counted.
Prints a table and, last, one JSON line. ``measure()`` is importable (bench/caldav_sync.py reports the same keys).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.google import GoogleConnector  # noqa: E402
from connectors.http_retry import MailboxLimiter, Retrier  # noqa: E402
from connectors.outlook import OutlookConnector, finish_authorization, make_app, start_authorization  # noqa: E402
from tests.fakes.google_calendar import FakeGoogleCalendar  # noqa: E402
from tests.fakes.graph import FakeGraph  # noqa: E402

START = datetime.now(timezone.utc).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _window() -> dict[str, datetime]:
    now = datetime.now(timezone.utc)
    return {"window_start": now - timedelta(days=1), "window_end": now + timedelta(days=90)}


def _run(fake: Any, connector: Any, calendar_id: str, change: Any, ids: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    mark, t = len(fake.api_requests), time.perf_counter()
    first = connector.changes(calendar_id, None, **_window())
    out["initial_requests"], out["initial_s"] = fake.requests_since(mark), time.perf_counter() - t
    out["occurrences"] = len(first.upserted)
    mark, t = len(fake.api_requests), time.perf_counter()
    second = connector.changes(calendar_id, first.cursor, **_window())
    out["nochange_requests"], out["nochange_s"] = fake.requests_since(mark), time.perf_counter() - t
    for eid in ids[: max(1, len(ids) // 100)]:
        change(eid)
    mark, t = len(fake.api_requests), time.perf_counter()
    third = connector.changes(calendar_id, second.cursor, **_window())
    out["change_requests"], out["change_s"] = fake.requests_since(mark), time.perf_counter() - t
    out["changed_items"] = len(third.upserted) + len(third.deleted_uids)
    return out


def measure_google(events: int) -> dict[str, float]:
    with FakeGoogleCalendar() as fake:
        cal = "primary@example.com"
        ids = []
        for n in range(events):
            start = START + timedelta(hours=n % 9, days=n // 9)
            rule = ["RRULE:FREQ=WEEKLY;COUNT=12"] if n % 10 == 0 else None
            ids.append(fake.add_event(cal, f"Cita {n}", start, start + timedelta(hours=1), recurrence=rule,
                                      attendees=[f"client{n}@example.com"]))
        connector = GoogleConnector(fake.issue_tokens(), client_id=fake.client_id, client_secret=fake.client_secret,
                                    api_endpoint=fake.api_endpoint, token_uri=fake.token_uri,
                                    retrier=Retrier(sleep=lambda s: None))
        singles = [i for n, i in enumerate(ids) if n % 10]
        return _run(fake, connector, cal, lambda eid: fake.update_event(cal, eid, summary="Movida"), singles)


def measure_graph(events: int) -> dict[str, float]:
    with FakeGraph() as fake:
        cal = fake.default_calendar()
        ids = []
        for n in range(events):
            start = START + timedelta(hours=n % 9, days=n // 9)
            if n % 10 == 0:
                ids.extend(fake.add_series(cal, f"Serie {n}", start, timedelta(hours=1), 12,
                                           attendees=(f"client{n}@example.com",))[1][:1])
            else:
                ids.append(fake.add_event(cal, f"Cita {n}", start, start + timedelta(hours=1),
                                          attendees=(f"client{n}@example.com",)))
        app = make_app(fake.client_id, fake.client_secret, authority=fake.authority, http_client=fake.session())
        flow = start_authorization(app, "https://reagenda.test/connect/outlook/callback")
        creds = finish_authorization(app, flow, fake.consent(flow["auth_uri"])[1])
        connector = OutlookConnector(creds, client_id=fake.client_id, client_secret=fake.client_secret,
                                     authority=fake.authority, graph_url=fake.graph_url, session=fake.session(),
                                     limiter=MailboxLimiter(), retrier=Retrier(sleep=lambda s: None))
        return _run(fake, connector, cal, lambda eid: fake.update_event(cal, eid, subject="Movida"), ids)


def measure(events: int) -> dict[str, Any]:
    google, graph = measure_google(events), measure_graph(events)
    result: dict[str, Any] = {"events": events}
    for name, data in (("google", google), ("graph", graph)):
        for key, value in data.items():
            result[f"{name}_{key}"] = round(value, 4) if isinstance(value, float) else value
    return result


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", message="response_mode='form_post'")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    result = measure(args.events)
    print(f"{'provider':<8} {'initial req':>11} {'no-change req':>13} {'1% change req':>13} {'occurrences':>11}")
    for name in ("google", "graph"):
        print(f"{name:<8} {result[f'{name}_initial_requests']:>11} {result[f'{name}_nochange_requests']:>13} "
              f"{result[f'{name}_change_requests']:>13} {result[f'{name}_occurrences']:>11}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
