"""``reagenda booking setup/show``: an operator opens booking for an owner; bad input gets a message to act on."""
from __future__ import annotations

from sqlalchemy import select

from reagenda import cli
from store.models import AppointmentType, BookingSettings
from tests.factories import make_owner


def _run(monkeypatch, settings, *argv: str) -> int:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "load", lambda: settings)
    return cli.main(list(argv))


def test_setup_then_show(stack, monkeypatch, capsys):
    with stack.session() as s:
        make_owner(s, stack.clock.now(), email="ana@example.com")
    code = _run(monkeypatch, stack.settings, "booking", "setup", "--owner", "ana@example.com", "--slug", "lumen",
                "--type", "sesion:Sesión:60:0:10", "--type", "corta:Llamada:30",
                "--hours", '{"mon": [["09:00", "13:00"]], "sat": [["10:00", "12:00"]]}', "--notice", "60",
                "--meeting", "conference")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "http://reagenda.test/book/lumen/sesion  Sesión, 60 min" in out
    assert "http://reagenda.test/book/lumen/corta  Llamada, 30 min" in out
    with stack.session() as s:
        bs = s.scalar(select(BookingSettings))
        assert bs.slug == "lumen" and bs.rules["hours"]["sat"] == [["10:00", "12:00"]]
        assert bs.rules["min_notice_minutes"] == 60
        t = s.scalar(select(AppointmentType).where(AppointmentType.slug == "sesion"))
        assert (t.duration_minutes, t.buffer_after_minutes, t.meeting) == (60, 10, "conference")
    assert _run(monkeypatch, stack.settings, "booking", "show", "--owner", "ana@example.com") == 0
    assert "/book/lumen/corta" in capsys.readouterr().out


def test_bad_input_is_refused_with_a_reason(sqlite_stack, monkeypatch, capsys):
    stack = sqlite_stack
    with stack.session() as s:
        make_owner(s, stack.clock.now(), email="ana@example.com")
    base = ("booking", "setup", "--owner", "ana@example.com")
    assert _run(monkeypatch, stack.settings, *base) == 2
    assert "--slug is required" in capsys.readouterr().err
    assert _run(monkeypatch, stack.settings, *base, "--slug", "Lumen Studio") == 2
    assert "lowercase" in capsys.readouterr().err
    assert _run(monkeypatch, stack.settings, *base, "--slug", "lumen", "--hours", '{"mon": [["9am", "13:00"]]}') == 2
    assert "hours.mon" in capsys.readouterr().err
    assert _run(monkeypatch, stack.settings, *base, "--slug", "lumen", "--type", "sesion:60") == 2
    assert "slug:name:minutes" in capsys.readouterr().err
    assert _run(monkeypatch, stack.settings, "booking", "show", "--owner", "nobody@example.com") == 2
    assert "no owner" in capsys.readouterr().err
