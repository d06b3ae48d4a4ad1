"""``reagenda sync`` as an operator runs it: a real process, a real Radicale, the store on SQLite."""
from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

from tests.procs import REAGENDA, clean_env
from tests.sync_support import appointments, connect, ics


def test_reagenda_sync_creates_appointments_then_reports_nothing_new(sqlite_stack, radicale, tmp_path):
    stack = sqlite_stack
    now = datetime.now(timezone.utc).replace(microsecond=0)
    cal_url = radicale.make_calendar(f"cli-{uuid.uuid4().hex[:8]}")
    radicale.put(cal_url, "a.ics", ics("a", now + timedelta(days=3), now + timedelta(days=3, hours=1),
                                       attendees=("marta@example.com",)))
    cal_id = connect(stack, "caldav", {"url": radicale.url, "username": radicale.username,
                                       "password": radicale.password}, cal_url)
    env = clean_env(DATABASE_URL=stack.settings.database_url, REDIS_URL=stack.settings.redis_url,
                    SECRET_KEY=stack.settings.secret_key, REAGENDA_VAR_DIR=str(tmp_path / "var"))
    first = subprocess.run(REAGENDA + ["sync", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert line == {"calendar": cal_id, "status": "ok", "full": True, "events": ["new"], "skipped": 0, "error": ""}
    assert appointments(stack, cal_id)[("a.ics", "")][0] == "scheduled"
    again = subprocess.run(REAGENDA + ["sync", "--all"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"calendar {cal_id}: ok: no changes" in again.stdout
