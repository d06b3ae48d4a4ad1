"""Recording "sent" without waiting for the answer (workflows/sent_record.py), on a real PostgreSQL.

The statement for each delivered message is written at once and its answer read later; a connection that breaks
in between must never lose a record silently: what the database did not confirm is handed back and recorded the
slow way, and no message is delivered twice.
"""
from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import func, select

from store.models import Message, Step
from tests.factories import make_appointment, make_owner
from workflows import outbound
from workflows.sent_record import Delivered, SentRecorder


@pytest.fixture
def pg_stack(request, tmp_path):  # type: ignore[no-untyped-def]
    """The stack on PostgreSQL + real Redis only: the recorder is PostgreSQL's path (SQLite records in-line)."""
    from reagenda import runtime
    from tests.conftest import _make_stack

    stack = _make_stack("postgres", tmp_path, request.getfixturevalue("postgres_url"),
                        request.getfixturevalue("real_redis_url"))
    runtime.install(stack.ctx)
    yield stack
    runtime.install(None)
    stack.ctx.close()


def _batch(stack, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, policy={"confirmations": False})
        ids = [make_appointment(s, owner, now, now + timedelta(days=2, minutes=1), client_email=f"c{i}@example.com",
                                uid=f"rec-{i}").id for i in range(n)]
    stack.clock.advance(timedelta(minutes=1))
    return ids


def _terminate_other_backends(database_url: str) -> int:
    """Kill every other connection to the test database, as a database restart or a network cut would."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        return admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


def test_records_are_confirmed_and_a_broken_connection_hands_the_rest_back(pg_stack, postgres_url):
    _batch(pg_stack, 3)
    pg_stack.run_due()  # three messages exist; mark them back to "sending" to record them here
    with pg_stack.session() as s:
        messages = list(s.scalars(select(Message).order_by(Message.id)))
        for m in messages:
            m.status, m.sent_at = "sending", None
    ids = [m.id for m in messages]
    now = pg_stack.clock.now()
    raw = psycopg.connect(postgres_url, autocommit=True)
    recorder = SentRecorder(raw)
    recorder.record(Delivered(1, ids[0], "prov-1", now))
    recorder.record(Delivered(2, ids[1], "prov-2", now))  # reads the first answer before writing
    assert [d.message_id for d in recorder.recorded] == [ids[0]]
    recorder.close()
    assert [d.message_id for d in recorder.recorded] == [ids[0], ids[1]] and not recorder.broken

    assert _terminate_other_backends(postgres_url) >= 1
    recorder.record(Delivered(3, ids[2], "prov-3", now))
    recorder.close()
    assert recorder.broken, "a dead connection is reported, so the caller discards it"
    assert [d.message_id for d in recorder.unrecorded] == [ids[2]], "the unconfirmed record is handed back"
    raw.close()
    with pg_stack.session() as s:
        status = dict(s.execute(select(Message.id, Message.status)).all())
        provider = dict(s.execute(select(Message.id, Message.provider_id)).all())
    assert status == {ids[0]: "sent", ids[1]: "sent", ids[2]: "sending"}
    assert provider[ids[0]] == "prov-1" and provider[ids[1]] == "prov-2"


def test_a_batch_whose_connection_dies_mid_way_records_every_message_once(pg_stack, postgres_url, monkeypatch):
    """The database connection of a batch is cut after its first delivery: the messages delivered after that
    are recorded the slow way (with retries) as soon as the break is seen, every step ends done, and nothing is
    delivered twice."""
    appt_ids = _batch(pg_stack, 4)
    real_deliver = outbound.deliver
    calls = []

    def deliver_then_cut(ctx, message, medium):  # type: ignore[no-untyped-def]
        with pg_stack.session() as s:  # before each delivery: every earlier one confirmed but the last
            recorded = s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
        assert recorded >= len(calls) - 1, "a delivered message is never left unconfirmed beyond the one awaited"
        provider_id = real_deliver(ctx, message, medium)
        calls.append(message.recipient)
        if len(calls) == 2:
            _terminate_other_backends(postgres_url)
        return provider_id

    monkeypatch.setattr(outbound, "deliver", deliver_then_cut)
    assert pg_stack.run_due() == 4
    assert len(calls) == 4, "each message delivered once"
    with pg_stack.session() as s:
        steps = list(s.scalars(select(Step).where(Step.subject_id.in_(appt_ids), Step.kind == "reminder_48h")))
        sent = list(s.scalars(select(Message).where(Message.status == "sent")))
    assert len(sent) == 4 and all(m.provider_id for m in sent)
    assert [st.state for st in steps] == ["done"] * 4
    assert len(list(pg_stack.settings.outbox_dir.glob("*.eml"))) == 4



KILLED_AFTER_WRITING = """
import os, signal, sys
from datetime import datetime, timezone
import psycopg
from workflows.sent_record import Delivered, SentRecorder
recorder = SentRecorder(psycopg.connect(sys.argv[1], autocommit=True))
recorder.record(Delivered(0, int(sys.argv[2]), "prov-killed", datetime.now(timezone.utc)))
os.kill(os.getpid(), signal.SIGKILL)  # before any answer is read
"""


def test_a_record_written_is_committed_even_if_the_worker_is_killed_at_once(pg_stack, postgres_url):
    """The claim the duplicate bound rests on: once the statement is written, the server commits it whether or not
    the writer lives to read the answer."""
    import subprocess
    import sys
    from pathlib import Path

    _batch(pg_stack, 5)
    pg_stack.run_due()
    with pg_stack.session() as s:
        ids = [m.id for m in s.scalars(select(Message).order_by(Message.id))]
        for m in s.scalars(select(Message)):
            m.status, m.provider_id = "sending", ""
    root = Path(__file__).resolve().parent.parent
    for message_id in ids:
        proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_WRITING, postgres_url, str(message_id)], cwd=root,
                              capture_output=True, timeout=60)
        assert proc.returncode == -9, proc.stderr.decode()
    with pg_stack.session() as s:
        rows = s.execute(select(Message.status, Message.provider_id)).all()
    assert rows and all(r == ("sent", "prov-killed") for r in rows), rows
