"""The first run: a local CalDAV calendar (an embedded Radicale under ``./var/demo-radicale/``) with sample
appointments, connected to an owner and synced, so the flows show up in the outbox within a minute and without
any account anywhere.

Used by ``reagenda demo`` (which then runs everything, like ``reagenda run``) and by the "Try the demo calendar"
button on an empty dashboard. The Radicale process is started on first use and reused while it answers; its
folder keeps the calendar between runs. Sample events are placed relative to now, in the owner's zone.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Calendar, CalendarConnection, Owner

log = logging.getLogger(__name__)

DEMO_USER = "demo"
_STARTED: dict[str, "subprocess.Popen[bytes]"] = {}  # Radicale processes this process started, by folder
CALENDAR = "consulta"
SAMPLE_CLIENTS = (
    # (name, email, locale, hours from now, minutes long, title)
    ("Marta Ruiz", "marta.ruiz@example.com", "es", 1, 60, "Sesión de fisioterapia"),
    ("Luis Pardo", "luis.pardo@example.com", "es", 3, 45, "Consulta de seguimiento"),
    ("Sophie Martin", "sophie.martin@example.com", "en", 26, 60, "Coaching session"),
    ("Pablo Gil", "pablo.gil@example.com", "es", 50, 60, "Primera consulta"),
    ("Emma Clarke", "emma.clarke@example.com", "en", 24 * 6, 90, "Strategy workshop"),
)


@dataclass
class DemoRadicale:
    folder: Path
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def calendar_url(self) -> str:
        return f"{self.url}{DEMO_USER}/{CALENDAR}/"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_radicale(var_dir: Path) -> DemoRadicale:
    """The demo Radicale, started if it is not answering. Port and password live in its folder (mode 0600)."""
    folder = var_dir / "demo-radicale"
    folder.mkdir(parents=True, exist_ok=True)
    users = folder / "users"
    if not users.exists():
        fd = os.open(users, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{DEMO_USER}:{secrets.token_urlsafe(16)}\n")
    password = users.read_text().strip().split(":", 1)[1]
    port_file = folder / "port"
    if port_file.exists() and _answers(int(port_file.read_text())):
        return DemoRadicale(folder, int(port_file.read_text()), password)
    port = _free_port()
    logfile = open(folder / "radicale.log", "ab")  # noqa: SIM115 - owned by the child process from here on
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
         "--storage-filesystem-folder", str(folder / "collections"), "--auth-type", "htpasswd",
         "--auth-htpasswd-filename", str(users), "--auth-htpasswd-encryption", "plain",
         "--rights-type", "owner_only", "--web-type", "none", "--logging-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=logfile, start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    logfile.close()
    deadline = time.monotonic() + 20
    while not _answers(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo calendar server did not start; see {folder / 'radicale.log'}")
        time.sleep(0.1)
    port_file.write_text(str(port))
    (folder / "pid").write_text(str(proc.pid))
    _STARTED[str(folder)] = proc
    log.info("demo Radicale listening on 127.0.0.1:%d (storage %s)", port, folder)
    return DemoRadicale(folder, port, password)


def stop_radicale(var_dir: Path) -> None:
    """Stop the demo Radicale that ``ensure_radicale`` started (by the pid it recorded, checked to be Radicale)."""
    folder = var_dir / "demo-radicale"
    pid_file = folder / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip() or 0)
    proc = _STARTED.pop(str(folder), None)
    if proc is not None and proc.pid == pid:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pid_file.unlink(missing_ok=True)
        (folder / "port").unlink(missing_ok=True)
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if pid and b"radicale" in cmdline:
        try:
            os.kill(pid, 15)
        except OSError:
            pass
    pid_file.unlink(missing_ok=True)
    (folder / "port").unlink(missing_ok=True)


def _ics(uid: str, start: datetime, minutes: int, title: str, owner_email: str, name: str, email: str,
         meeting: bool) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    where = ("DESCRIPTION:Videollamada / video call: https://meet.jit.si/reagenda-demo-" + uid + "\r\n"
             if meeting else "LOCATION:Calle Mayor 12, Madrid\r\n")
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Reagenda demo//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:{start:{fmt}}\r\nDTSTART:{start:{fmt}}\r\n"
            f"DTEND:{start + timedelta(minutes=minutes):{fmt}}\r\nSUMMARY:{title}\r\n{where}"
            f"ORGANIZER:mailto:{owner_email}\r\nATTENDEE;CN={name};PARTSTAT=ACCEPTED:mailto:{email}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n")


def seed_calendar(server: DemoRadicale, owner: Owner, now: datetime) -> int:
    """Create the calendar and (re)write the sample events around ``now``; returns how many."""
    auth = (DEMO_USER, server.password)
    requests.request("MKCOL", f"{server.url}{DEMO_USER}/", auth=auth, timeout=10)
    body = ('<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Consulta (demo)'
            '</D:displayname></D:prop></D:set></C:mkcalendar>')
    r = requests.request("MKCALENDAR", server.calendar_url, data=body.encode(), auth=auth, timeout=10)
    if r.status_code not in (201, 405, 409):  # 405/409: it exists already (server versions differ)
        raise RuntimeError(f"could not create the demo calendar (HTTP {r.status_code})")
    base = now.astimezone(ZoneInfo(owner.timezone)).replace(minute=0, second=0, microsecond=0)
    for i, (name, email, _locale, hours, minutes, title) in enumerate(SAMPLE_CLIENTS):
        start = (base + timedelta(hours=hours)).astimezone(ZoneInfo("UTC"))
        uid = f"demo-{owner.id}-{i}"
        ics = _ics(uid, start, minutes, title, owner.email, name, email, meeting=i % 2 == 0)
        resp = requests.put(f"{server.calendar_url}{uid}.ics", data=ics.encode(), auth=auth, timeout=10,
                            headers={"Content-Type": "text/calendar; charset=utf-8"})
        resp.raise_for_status()
    return len(SAMPLE_CLIENTS)


def connect_demo_calendar(session: Session, owner: Owner, ctx: Any) -> str:
    """Start (or reuse) the demo calendar, seed it, connect it to ``owner``, sync. Returns a line for the owner."""
    from connectors import registry
    from store.crypto import encrypt_credentials
    from workflows import sync

    server = ensure_radicale(ctx.settings.var_dir)
    count = seed_calendar(server, owner, ctx.clock.now())
    creds = {"url": server.url, "username": DEMO_USER, "password": server.password}
    found = registry.build("caldav", creds, settings=ctx.settings).list_calendars()
    conn = session.scalar(select(CalendarConnection).where(CalendarConnection.owner_id == owner.id,
                                                           CalendarConnection.provider == "caldav",
                                                           CalendarConnection.account == "demo"))
    if conn is None:
        conn = CalendarConnection(owner_id=owner.id, provider="caldav", account="demo", created_at=ctx.clock.now())
        session.add(conn)
    conn.credentials = encrypt_credentials(ctx.settings.secret_key, creds)
    conn.status, conn.status_detail = "ok", ""
    session.flush()
    known = {c.external_id for c in session.scalars(select(Calendar).where(Calendar.connection_id == conn.id))}
    for info in found:
        if info.external_id not in known:
            session.add(Calendar(connection_id=conn.id, external_id=info.external_id, name=info.name,
                                 watched=True, receives_bookings=True))
    session.commit()
    results = sync.sync_connection(ctx, conn.id)
    new = sum(r.count("new") for r in results)
    if owner.locale == "en":
        return (f"Demo calendar connected: {count} sample appointments, {new} new. Confirmation requests are on "
                "their way; open the Outbox in a few seconds.")
    return (f"Calendario de demostración conectado: {count} citas de ejemplo, {new} nuevas. Las solicitudes de "
            "confirmación ya salen; abre Enviados en unos segundos.")


def demo_owner(session: Session, now: datetime, email: str = "demo@reagenda.local") -> tuple[Owner, str | None]:
    """The demo owner (created once, with a printed random password). Returns (owner, new password or None)."""
    from werkzeug.security import generate_password_hash

    from web.auth import HASH_METHOD

    owner = session.scalar(select(Owner).where(Owner.email == email))
    if owner is not None:
        return owner, None
    password = secrets.token_urlsafe(9)
    owner = Owner(email=email, name="Ana", business_name="Estudio Lumen (demo)",
                  password_hash=generate_password_hash(password, method=HASH_METHOD), timezone="Europe/Madrid",
                  locale="es", policy={"deposit_cents": 2000}, invoice_seq=0, created_at=now, preferences={})
    session.add(owner)
    session.flush()
    return owner, password


def prepare_demo(settings: Any, *, build: Any) -> str:
    """``reagenda demo``: demo owner, demo calendar, sync, then send what is due now through a burst worker, so
    the outbox already shows the confirmation requests. Returns what to tell the person at the terminal.
    ``build`` makes the runtime context (the CLI's, which turns startup errors into one-line messages)."""
    from rq import SimpleWorker

    from reagenda.embedded_redis import EmbeddedRedis
    from store.models import Message
    from workflows import dispatcher

    embedded = None
    if settings.redis_url is None and not settings.embedded_redis_socket.exists():
        embedded = EmbeddedRedis(settings.embedded_redis_socket).start()
    ctx = build(settings)
    from reagenda import runtime

    runtime.install(ctx)  # the in-process worker finds the context the way worker.py's does
    try:
        with ctx.sessions() as session:
            owner, password = demo_owner(session, ctx.clock.now())
            session.commit()
            summary = connect_demo_calendar(session, owner, ctx)
            email = owner.email
        sent = 0
        for _round in range(3):  # a step may plan the next one due at once (e.g. a reminder inside its window)
            if dispatcher.dispatch_due(ctx) == 0:
                break
            SimpleWorker([ctx.queue()], connection=ctx.redis).work(burst=True, with_scheduler=False,
                                                                  logging_level="WARNING")
        with ctx.sessions() as session:
            sent = session.query(Message).filter(Message.owner_id == owner.id, Message.status == "sent").count()
    finally:
        runtime.install(None)
        ctx.close()
        if embedded is not None:
            embedded.stop()
    login = (f"  sign in as {email} with password {password}" if password
             else f"  sign in as {email} (password printed the first time; reset it from the sign-in page)")
    return "\n".join([
        "Reagenda demo is ready.",
        f"  {summary}",
        f"  {sent} message(s) in the outbox: {settings.outbox_dir}",
        login,
        f"  open {settings.base_url}",
    ])
