"""The IMAP poller against a small local IMAP4rev1 server: replies are processed once and marked seen."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from replies.imap import IMAPError, poll_once
from store.models import InboundEvent, Reply
from tests.factories import make_appointment, make_owner
from tests.fakes.imap import RunningIMAP


def _mail(text: str, mid: str, **headers: str) -> bytes:
    m = EmailMessage()
    m["From"] = "Marta <marta@example.com>"
    m["To"] = "citas@lumen.test"
    m["Subject"] = "Re: Recordatorio"
    m["Message-ID"] = mid
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(text)
    return bytes(m)


def test_poll_processes_unseen_once_and_marks_them(stack, monkeypatch):  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        make_appointment(s, owner, now, now + timedelta(days=2))
    with RunningIMAP("citas@lumen.test", "app pass word") as server:
        url = f"imap://citas%40lumen.test:app%20pass%20word@127.0.0.1:{server.port}/INBOX?tls=none"
        monkeypatch.setattr(stack.ctx, "settings", dataclasses.replace(stack.settings, imap_url=url))
        server.box.add(_mail("Confirmo, ahí estaré.\n\nEnviado desde mi iPhone", "<a1@mail.test>"))
        server.box.add(_mail("Estoy fuera de la oficina", "<a2@mail.test>", Auto_Submitted="auto-replied"))
        server.box.add(b"Subject: no sender\r\n\r\nbroken\r\n")
        result = poll_once(stack.ctx)
        assert (result.fetched, result.processed, result.rejected) == (3, 2, 1)
        assert all("\\Seen" in f for f in server.box.flags.values())
        assert "\\Flagged" in server.box.flags[3]
        # Nothing new: a second poll does nothing; a message left unseen by a crash is deduplicated.
        assert poll_once(stack.ctx).fetched == 0
        server.box.flags[1].clear()
        assert poll_once(stack.ctx).processed == 1
    with stack.session() as s:
        replies = s.scalars(select(Reply).order_by(Reply.id)).all()
        assert [(r.intent, r.auto_reply) for r in replies] == [("confirm", False), ("auto_reply", True)]
        assert replies[0].text == "Confirmo, ahí estaré."
        assert len(s.scalars(select(InboundEvent)).all()) == 2


def test_bad_password_is_a_clear_error_without_the_password(stack, monkeypatch):  # type: ignore
    with RunningIMAP("citas@lumen.test", "right") as server:
        url = f"imap://citas%40lumen.test:wrong-pass@127.0.0.1:{server.port}/INBOX?tls=none"
        monkeypatch.setattr(stack.ctx, "settings", dataclasses.replace(stack.settings, imap_url=url))
        with pytest.raises(IMAPError, match="refused the login") as info:
            poll_once(stack.ctx)
        assert "wrong-pass" not in str(info.value)
