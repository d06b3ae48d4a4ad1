"""The outbox: the embedded default email channel for trying Reagenda out.

Nothing leaves the machine. The ``messages`` table already holds every message (the dashboard shows it); this
channel also writes each one as an ``.eml`` file under ``var/outbox/`` named by its idempotency key, written
atomically, so a retried send overwrites the same file instead of adding a second one.
"""
from __future__ import annotations

import os
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from channels.base import Channel, OutgoingMessage
from channels.registry import register


class OutboxChannel(Channel):
    key = "outbox"

    def send(self, message: OutgoingMessage) -> str:
        folder = self.settings.outbox_dir
        folder.mkdir(parents=True, exist_ok=True)
        mail = EmailMessage()
        mail["From"] = message.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(idstring=message.idempotency_key, domain="reagenda.local")
        if message.reply_to:
            mail["Reply-To"] = message.reply_to
        for name, value in message.headers.items():
            mail[name] = value
        mail.set_content(message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        path = folder / f"{message.idempotency_key}.eml"
        tmp = path.with_suffix(".eml.tmp")
        tmp.write_bytes(bytes(mail))
        os.replace(tmp, path)
        return f"outbox:{path.name}"


register(OutboxChannel)
