"""The first run: the demo button on an empty dashboard (and ``reagenda demo``) starts an embedded Radicale under
var/, seeds sample appointments, connects and syncs them, and the flows' first messages reach the outbox."""
from __future__ import annotations

from sqlalchemy import func, select

from store.models import Appointment, CalendarConnection, Message
from tests.web_fixtures import post_form, sign_up, web_app, web_client  # noqa: F401
from web import demo


def test_demo_button_connects_a_sample_calendar_and_the_worker_sends(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    try:
        r = post_form(web_client, "/", "/calendars/demo")
        assert r.status_code == 302
        with stack.session() as s:
            assert s.scalar(select(func.count()).select_from(Appointment)) == len(demo.SAMPLE_CLIENTS)
            conn = s.scalar(select(CalendarConnection))
            assert conn.provider == "caldav" and conn.status == "ok"
            assert demo.DEMO_USER not in conn.credentials and "password" not in conn.credentials  # encrypted
        body = web_client.get("/").get_data(as_text=True)
        assert "Marta Ruiz" in body and "Demo calendar connected" in body
        stack.run_due()
        with stack.session() as s:
            assert s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent")) >= 1
        # Pressing it again reuses the running server and the same connection: nothing is duplicated.
        post_form(web_client, "/", "/calendars/demo")
        with stack.session() as s:
            assert s.scalar(select(func.count()).select_from(Appointment)) == len(demo.SAMPLE_CLIENTS)
            assert s.scalar(select(func.count()).select_from(CalendarConnection)) == 1
    finally:
        demo.stop_radicale(stack.settings.var_dir)
    assert not (stack.settings.var_dir / "demo-radicale" / "pid").exists()


def test_reagenda_demo_no_run_prepares_everything_on_embedded_defaults(tmp_path):  # type: ignore[no-untyped-def]
    """The README's first command, as a new user runs it: nothing configured, SQLite and the embedded Redis."""
    import subprocess

    from tests.procs import REAGENDA, clean_env

    var = tmp_path / "var"
    env = clean_env(REAGENDA_VAR_DIR=str(var))
    done = subprocess.run(REAGENDA + ["demo", "--no-run"], env=env, capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Reagenda demo is ready." in done.stdout and "demo@reagenda.local" in done.stdout
    assert len(list((var / "outbox").glob("*.eml"))) >= 1, done.stdout
    assert not (var / "demo-radicale" / "pid").exists(), "--no-run stops the calendar server it started"
    assert not (var / "redis.sock").exists(), "and the embedded Redis"
