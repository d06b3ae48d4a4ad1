"""Workflow commands for the CLI: ``reagenda simulate`` and ``reagenda ghost start``.

Registered by ``reagenda/cli.py`` through ``add_parsers``; each command returns the process exit status and prints
errors a user can act on.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from sqlalchemy import func, select

from reagenda.settings import Settings


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = sub.add_parser("simulate", help="print what each client would receive over the next days (dry run)")
    sim.add_argument("--days", type=int, default=14, help="how far ahead (default 14)")
    sim.add_argument("--appointment", type=int, help="only this appointment (and its client's sequences)")
    sim.add_argument("--from", dest="start", help="start instead of now (ISO 8601, e.g. 2026-03-02T09:00:00Z)")
    sim.set_defaults(func=cmd_simulate)
    gh = sub.add_parser("ghost", help="the ghosting ultimatum for a client who went silent")
    gh.add_argument("action", choices=["start"])
    gh.add_argument("client_email")
    gh.add_argument("--owner", help="the owner's email (needed when several owners have this client)")
    gh.set_defaults(func=cmd_ghost)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from store.db import make_engine
    from store.models import Owner
    from workflows.simulate import format_timeline, simulate

    start = datetime.now(timezone.utc)
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError:
            print(f"reagenda: --from {args.start!r} is not a date and time; expected e.g. 2026-03-02T09:00:00Z",
                  file=sys.stderr)
            return 2
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
    if args.days < 1:
        print("reagenda: --days must be at least 1", file=sys.stderr)
        return 2
    try:
        entries = simulate(settings, days=args.days, now=start, appointment_id=args.appointment)
    except ValueError as exc:
        print(f"reagenda: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            zones = dict(conn.execute(select(Owner.id, Owner.timezone)).all())
    finally:
        engine.dispose()
    print(f"Simulated {args.days} day(s) from {start:%Y-%m-%d %H:%M}Z (dry run):\n")
    print(format_timeline(entries, zones))
    return 0


def cmd_ghost(args: argparse.Namespace, settings: Settings) -> int:
    from store.db import make_engine, make_sessionmaker
    from store.models import Client, Owner
    from workflows.ghosting import start_ghosting

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            query = select(Client).where(func.lower(Client.email) == args.client_email.strip().lower())
            if args.owner:
                query = query.join(Owner, Owner.id == Client.owner_id).where(
                    func.lower(Owner.email) == args.owner.strip().lower())
            found = list(session.scalars(query))
            if not found:
                print(f"reagenda: no client with the email {args.client_email}"
                      f"{' for owner ' + args.owner if args.owner else ''}", file=sys.stderr)
                return 2
            if len(found) > 1:
                print(f"reagenda: {len(found)} owners have a client {args.client_email}; add --owner EMAIL",
                      file=sys.stderr)
                return 2
            client = found[0]
            now = datetime.now(timezone.utc)
            if not start_ghosting(session, client, now, reason="started by the owner from the command line"):
                print(f"reagenda: the client's file is {client.state}; nothing started", file=sys.stderr)
                return 2
            print(f"Ghosting sequence started for {client.email}: a check-in now, the ultimatum in "
                  "7 days, the file closes 7 days later unless they answer.")
    finally:
        engine.dispose()
    return 0
