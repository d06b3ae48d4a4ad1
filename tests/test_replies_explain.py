"""``reagenda reply explain FILE.eml``: the operator's view of how an email would be handled, text and JSON."""
from __future__ import annotations

import json
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import func, select

from reagenda.cli import main
from store.models import InboundEvent, Reply
from tests.factories import make_appointment, make_owner


def _env(monkeypatch, stack):  # type: ignore[no-untyped-def]
    s = stack.settings
    monkeypatch.setenv("REAGENDA_VAR_DIR", str(s.var_dir))
    monkeypatch.setenv("DATABASE_URL", s.database_url)
    monkeypatch.setenv("REDIS_URL", s.redis_url)
    monkeypatch.setenv("SECRET_KEY", s.secret_key)
    monkeypatch.setenv("EMAIL_BACKEND", "outbox")


def _eml(tmp_path, text: str, **headers: str):  # type: ignore[no-untyped-def]
    m = EmailMessage()
    m["From"] = "Marta <marta@example.com>"
    m["To"] = "citas@lumen.test"
    m["Subject"] = "Re: Recordatorio"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(text)
    path = tmp_path / "reply.eml"
    path.write_bytes(bytes(m))
    return path


def test_explain_text_and_json_without_storing_anything(sqlite_stack, monkeypatch, tmp_path, capsys):  # type: ignore
    stack = sqlite_stack
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=2))
    _env(monkeypatch, stack)
    path = _eml(tmp_path, "No podré ir, lo siento.\n\nEl lun, 2 mar 2026 a las 10:01, Estudio Lumen "
                          "<citas@lumen.test> escribió:\n> Confirma aquí\n")
    assert main(["reply", "explain", str(path)]) == 0
    out = capsys.readouterr().out
    assert "matched by:  sender" in out and "marta@example.com" in out
    assert "intent:      cancel (clear)" in out and "escribió" not in out

    assert main(["reply", "explain", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intent"]["intent"] == "cancel" and result["intent"]["evidence"]
    assert result["text"] == "No podré ir, lo siento." and result["auto_reply"]["is_auto"] is False
    with stack.session() as s:
        assert s.scalar(select(func.count()).select_from(Reply)) == 0
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 0


def test_explain_shows_auto_replies_and_rejections(sqlite_stack, monkeypatch, tmp_path, capsys):  # type: ignore
    _env(monkeypatch, sqlite_stack)
    path = _eml(tmp_path, "Estoy fuera de la oficina hasta el lunes.", Auto_Submitted="auto-replied")
    assert main(["reply", "explain", str(path)]) == 0
    out = capsys.readouterr().out
    assert "auto-reply:  yes, Auto-Submitted: auto-replied" in out and "matched by:  none" in out
    broken = tmp_path / "broken.eml"
    broken.write_bytes(b"Subject: no sender\r\n\r\nhola\r\n")
    assert main(["reply", "explain", str(broken)]) == 1
    assert "would be rejected: no sender" in capsys.readouterr().err
