"""One contract every calendar connector keeps (``tests/contract/conftest.py`` lists the connectors).

Written against the Protocol only: full sync, incremental add / move / delete, a recurring override, an expired
cursor, busy intervals, and write-back (create / update / delete, where deleting twice is success).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from connectors.base import Attendee, Changes, CursorInvalid, EventDraft
from tests.contract.conftest import OWNER, T0, WINDOW, Backend

CLIENT = "marta@example.com"
H = timedelta(hours=1)


def changes(b: Backend, cursor: str | None) -> Changes:
    return b.connector.changes(b.calendar_id, cursor, window_start=WINDOW[0], window_end=WINDOW[1])


def starts(c: Changes, uid: str) -> list[datetime]:
    return sorted(o.starts_at for o in c.upserted if o.uid == uid and o.status != "cancelled")


def gone(c: Changes, uid: str) -> bool:
    """Deleted: listed in deleted_uids, or (providers with per-instance changes) every occurrence cancelled."""
    listed = [o for o in c.upserted if o.uid == uid]
    return uid in c.deleted_uids or (bool(listed) and all(o.status == "cancelled" for o in listed))


def test_full_sync_lists_everything_in_the_window(backend: Backend) -> None:
    backend.add("one", T0 + timedelta(days=1), T0 + timedelta(days=1) + H, attendees=(CLIENT, OWNER))
    backend.add("weekly", T0 + timedelta(days=2), T0 + timedelta(days=2) + H, attendees=(CLIENT,), weekly_count=3)
    full = changes(backend, None)
    assert full.cursor and full.skipped == []
    one = [o for o in full.upserted if o.uid == backend.uid("one")]
    assert len(one) == 1 and (one[0].starts_at, one[0].ends_at) == (T0 + timedelta(days=1), T0 + timedelta(days=1) + H)
    assert CLIENT in {a.email for a in one[0].attendees}
    assert starts(full, backend.uid("weekly")) == [T0 + timedelta(days=2, weeks=w) for w in range(3)]
    assert len({o.recurrence_id for o in full.upserted if o.uid == backend.uid("weekly")}) == 3


def test_incremental_add_move_delete_and_nothing_when_nothing_changed(backend: Backend) -> None:
    backend.add("a", T0 + timedelta(days=1), T0 + timedelta(days=1) + H, attendees=(CLIENT,))
    backend.add("b", T0 + timedelta(days=3), T0 + timedelta(days=3) + H, attendees=(CLIENT,))
    cursor = changes(backend, None).cursor
    quiet = changes(backend, cursor)
    assert quiet.upserted == [] and quiet.deleted_uids == [] and not quiet.full

    backend.add("c", T0 + timedelta(days=5), T0 + timedelta(days=5) + H, attendees=("luis@example.com",))
    backend.move("a", T0 + timedelta(days=2), T0 + timedelta(days=2) + H)
    backend.remove("b")
    inc = changes(backend, quiet.cursor)
    assert starts(inc, backend.uid("c")) == [T0 + timedelta(days=5)]
    assert starts(inc, backend.uid("a")) == [T0 + timedelta(days=2)]
    assert gone(inc, backend.uid("b"))
    assert not inc.full
    after = changes(backend, inc.cursor)
    assert after.upserted == [] and after.deleted_uids == []


def test_recurring_override_moves_one_occurrence(backend: Backend) -> None:
    backend.add("series", T0 + timedelta(days=1), T0 + timedelta(days=1) + H, attendees=(CLIENT,), weekly_count=3)
    cursor = changes(backend, None).cursor
    second = T0 + timedelta(days=1, weeks=1)
    backend.override("series", 1, second + 3 * H, second + 4 * H)
    inc = changes(backend, cursor)
    got = starts(inc, backend.uid("series"))
    assert second + 3 * H in got and second not in got
    moved = next(o for o in inc.upserted if o.starts_at == second + 3 * H)
    original = next(o for o in changes(backend, None).upserted if o.uid == backend.uid("series")
                    and o.starts_at == T0 + timedelta(days=1, weeks=2))
    assert moved.recurrence_id and moved.recurrence_id != original.recurrence_id


def test_expired_cursor_raises_cursor_invalid_and_a_full_sync_recovers(backend: Backend) -> None:
    backend.add("a", T0 + timedelta(days=1), T0 + timedelta(days=1) + H, attendees=(CLIENT,))
    cursor = changes(backend, None).cursor
    assert cursor
    with pytest.raises(CursorInvalid):
        changes(backend, backend.invalidate(cursor))
    again = changes(backend, None)
    assert starts(again, backend.uid("a")) == [T0 + timedelta(days=1)]


def test_busy_intervals_merge_and_clip(backend: Backend) -> None:
    backend.add("a", T0 + timedelta(days=1), T0 + timedelta(days=1) + H, attendees=(CLIENT,))
    backend.add("b", T0 + timedelta(days=1, minutes=30), T0 + timedelta(days=1, hours=2))  # owner-only, overlapping
    backend.add("c", T0 + timedelta(days=3), T0 + timedelta(days=3) + H)
    busy = backend.connector.busy([backend.calendar_id], T0, T0 + timedelta(days=3, minutes=30))
    assert [(b.starts_at, b.ends_at) for b in busy] == [
        (T0 + timedelta(days=1), T0 + timedelta(days=1, hours=2)),
        (T0 + timedelta(days=3), T0 + timedelta(days=3, minutes=30)),
    ]


def test_create_update_delete_and_delete_again_is_success(backend: Backend) -> None:
    cursor = changes(backend, None).cursor
    draft = EventDraft(title="Sesión con Marta", starts_at=T0 + timedelta(days=4), ends_at=T0 + timedelta(days=4) + H,
                       attendees=(Attendee(CLIENT, name="Marta"),), description="Reservada con Reagenda",
                       timezone="Europe/Madrid")
    created = backend.connector.create_event(backend.calendar_id, draft)
    assert created.uid and (created.starts_at, created.ends_at) == (draft.starts_at, draft.ends_at)
    inc = changes(backend, cursor)
    assert starts(inc, created.uid) == [draft.starts_at]
    assert CLIENT in {a.email for o in inc.upserted if o.uid == created.uid for a in o.attendees}

    later = EventDraft(title=draft.title, starts_at=draft.starts_at + 2 * H, ends_at=draft.ends_at + 2 * H,
                       attendees=draft.attendees)
    updated = backend.connector.update_event(backend.calendar_id, created.uid, later)
    assert updated.uid == created.uid
    inc2 = changes(backend, inc.cursor)
    assert starts(inc2, created.uid) == [later.starts_at]

    backend.connector.delete_event(backend.calendar_id, created.uid)
    backend.connector.delete_event(backend.calendar_id, created.uid)  # already gone: still success
    assert gone(changes(backend, inc2.cursor), created.uid)
