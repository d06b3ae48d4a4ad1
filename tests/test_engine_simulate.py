"""``reagenda simulate``: the real planner, handlers and templates on a virtual clock, a dry-run channel, and a
store left exactly as it was (rolled-back transaction on PostgreSQL, a copy on SQLite)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import func, select

from store.models import Client, Message, Owner, Step
from tests import flowkit as fk
from tests.factories import make_appointment
from workflows.simulate import simulate, timeline_for_appointment


def _fingerprint(stack):  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return (sorted((st.id, st.state, st.due_at) for st in s.scalars(select(Step))),
                s.scalar(select(func.count()).select_from(Message)),
                sorted((c.id, c.state) for c in s.scalars(select(Client))))


def test_simulate_prints_the_fortnight_and_changes_nothing(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3), policy={"fee_cents": 2000})
    with stack.session() as s:
        make_appointment(s, s.get(Owner, owner_id), stack.clock.now(), stack.clock.now() + timedelta(days=9),
                         client_email="leo@example.com", uid="evt-leo", client_locale="en")
    before = _fingerprint(stack)
    entries = simulate(stack.settings, days=14, now=stack.clock.now())
    assert _fingerprint(stack) == before, "the real store is untouched"
    assert not list(stack.settings.outbox_dir.glob("*.eml")) if stack.settings.outbox_dir.exists() else True
    marta = [(e.kind, e.at) for e in entries if "marta" in e.client and not e.to_owner]
    start = fk.appointment(stack, appt_id).starts_at
    assert ("confirm_request", stack.clock.now()) in marta
    assert ("reminder", start - timedelta(hours=48)) in marta
    assert ("reminder", start - timedelta(hours=2)) in marta
    assert ("confirm_nudge", start - timedelta(hours=24)) in marta
    owner_kinds = [e.kind for e in entries if e.to_owner]
    assert "owner_arrival_check" in owner_kinds and "owner_unconfirmed" in owner_kinds
    leo = [e for e in entries if "leo" in e.client]
    assert leo and leo[0].subject.startswith("Please confirm")
    assert entries == sorted(entries, key=lambda e: e.at)


def test_timeline_for_one_appointment(stack):
    owner_id, client_id, appt_id = fk.setup(stack, starts_in=timedelta(days=3))
    with stack.session() as s:
        make_appointment(s, s.get(Owner, owner_id), stack.clock.now(), stack.clock.now() + timedelta(days=4),
                         client_email="leo@example.com", uid="evt-leo")
    entries = timeline_for_appointment(stack.settings, appt_id, days=7, now=stack.clock.now())
    assert entries and all(e.appointment_id == appt_id for e in entries)
    assert [e.kind for e in entries][:2] == ["confirm_request", "reminder"]


def test_cli_simulate_on_sqlite(sqlite_stack):
    stack = sqlite_stack
    fk.setup(stack, starts_in=timedelta(days=3))
    env = dict(os.environ, DATABASE_URL=stack.settings.database_url, REAGENDA_VAR_DIR=str(stack.settings.var_dir),
               SECRET_KEY="test-secret-key-not-for-production", REDIS_URL=stack.settings.redis_url or "")
    out = subprocess.run([sys.executable, "-m", "reagenda.cli", "simulate", "--days", "14", "--from",
                          stack.clock.now().isoformat()], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Marta <marta@example.com>" in out.stdout
    assert "confirm_request" in out.stdout and "CET" in out.stdout  # owner's zone (Madrid, winter)
    assert "store is unchanged" in out.stdout


def test_cli_ghost_start(sqlite_stack):
    stack = sqlite_stack
    _, client_id, _ = fk.setup(stack, starts_in=timedelta(days=3))
    env = dict(os.environ, DATABASE_URL=stack.settings.database_url, REAGENDA_VAR_DIR=str(stack.settings.var_dir),
               SECRET_KEY="test-secret-key-not-for-production")
    out = subprocess.run([sys.executable, "-m", "reagenda.cli", "ghost", "start", "Marta@Example.com"], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert fk.client(stack, client_id).state == "ghosting"
    again = subprocess.run([sys.executable, "-m", "reagenda.cli", "ghost", "start", "nobody@example.com"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 2 and "no client with the email nobody@example.com" in again.stderr
