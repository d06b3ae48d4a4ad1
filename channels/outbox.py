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
from channels.sendgrid import unsubscribe_headers


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
        # The same opt-out headers the real providers get, so what a trial shows is what clients would receive.
        for name, value in {**unsubscribe_headers(self.settings, message), **message.headers}.items():
            mail[name] = value
        mail.set_content(message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        for item in message.attachments:
            maintype, _, rest = item.content_type.partition("/")
            subtype, _, params = rest.partition(";")
            extra = dict(p.strip().split("=", 1) for p in params.split(";") if "=" in p)
            if maintype == "text":  # keep the charset: an ICS with "Sesión" must read back as "Sesión"
                mail.add_attachment(item.data.decode("utf-8"), subtype=subtype.strip(), filename=item.filename,
                                    params=extra)
            else:
                mail.add_attachment(item.data, maintype=maintype, subtype=subtype.strip(),
                                    filename=item.filename, params=extra)
        path = folder / f"{message.idempotency_key}.eml"
        tmp = path.with_suffix(".eml.tmp")
        tmp.write_bytes(bytes(mail))
        os.replace(tmp, path)
        return f"outbox:{path.name}"


register(OutboxChannel)
