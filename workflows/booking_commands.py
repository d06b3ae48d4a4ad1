"""``reagenda booking``: set up and show an owner's public booking page from the command line.

    reagenda booking setup --owner ana@example.com --slug lumen --type sesion:"Sesión":60:0:10 \
        --hours '{"mon": [["09:00", "13:00"], ["14:00", "18:00"]]}' --meeting conference
    reagenda booking show --owner ana@example.com

Registered by ``reagenda/cli.py`` through ``add_parsers``. Until the owner settings pages edit these, this is how
an operator opens booking for an owner; every value is validated with the same code the pages use.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone

from sqlalchemy import select

from reagenda.settings import Settings

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bk = sub.add_parser("booking", help="an owner's public booking page: set up or show its links")
    bk.add_argument("action", choices=["setup", "show"])
    bk.add_argument("--owner", required=True, help="the owner's email")
    bk.add_argument("--slug", help="the page's address: /book/<slug>/<type> (lowercase letters, digits, -)")
    bk.add_argument("--type", action="append", default=[], dest="types",
                    help="slug:name:minutes[:buffer_before:buffer_after], e.g. sesion:Sesión:60:0:10 (repeatable)")
    bk.add_argument("--hours", help='working hours JSON, e.g. {"mon": [["09:00", "13:00"], ["14:00", "18:00"]]}')
    bk.add_argument("--days-off", help="comma-separated dates, e.g. 2026-12-24,2026-12-25")
    bk.add_argument("--notice", type=int, help="minimum notice in minutes (default 120)")
    bk.add_argument("--horizon", type=int, help="how many days ahead can be booked (default 60)")
    bk.add_argument("--meeting", choices=["conference", "fixed", "none"],
                    help="conference: a Meet/Teams link from the calendar; fixed: --link; none: in person")
    bk.add_argument("--link", help="the owner's fixed video link (with --meeting fixed)")
    bk.add_argument("--location", default="", help="where in-person appointments happen")
    bk.set_defaults(func=cmd_booking)


def _fail(message: str) -> int:
    print(f"reagenda: {message}", file=sys.stderr)
    return 2


def cmd_booking(args: argparse.Namespace, settings: Settings) -> int:
    from store.db import make_engine, make_sessionmaker
    from store.models import AppointmentType, BookingSettings, Owner
    from workflows.availability import BookingRules, RulesError

    engine = make_engine(settings.database_url)
    now = datetime.now(timezone.utc)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            owner = session.scalar(select(Owner).where(Owner.email == args.owner.strip().lower()))
            if owner is None:
                return _fail(f"no owner with email {args.owner!r}; sign up first or check the address")
            bs = session.get(BookingSettings, owner.id)
            if args.action == "setup":
                if bs is None and not args.slug:
                    return _fail("--slug is required the first time, e.g. --slug lumen")
                if args.slug and not SLUG.match(args.slug):
                    return _fail(f"--slug {args.slug!r}: use 2-63 lowercase letters, digits and '-', e.g. lumen")
                taken = session.scalar(select(BookingSettings).where(BookingSettings.slug == args.slug,
                                                                     BookingSettings.owner_id != owner.id))
                if args.slug and taken is not None:
                    return _fail(f"--slug {args.slug!r} is used by another owner; choose another")
                rules = dict(bs.rules) if bs else {}
                try:
                    if args.hours:
                        rules["hours"] = json.loads(args.hours)
                    if args.days_off:
                        rules["days_off"] = [d.strip() for d in args.days_off.split(",") if d.strip()]
                    if args.notice is not None:
                        rules["min_notice_minutes"] = args.notice
                    if args.horizon is not None:
                        rules["horizon_days"] = args.horizon
                    BookingRules.from_dict(owner.timezone, rules)
                except (ValueError, RulesError) as exc:
                    return _fail(f"booking hours: {exc}")
                if bs is None:
                    bs = BookingSettings(owner_id=owner.id, slug=args.slug, rules=rules, meeting_link="",
                                         updated_at=now)
                    session.add(bs)
                bs.slug = args.slug or bs.slug
                bs.rules, bs.updated_at = rules, now
                if args.link:
                    bs.meeting_link = args.link
                if args.meeting == "fixed" and not bs.meeting_link:
                    return _fail("--meeting fixed needs --link https://... (your own video room)")
                for spec in args.types:
                    error = _upsert_type(session, owner.id, spec, args, now)
                    if error:
                        return _fail(error)
                session.flush()
            if bs is None:
                return _fail(f"{owner.email} has no booking page yet; run `reagenda booking setup --owner "
                             f"{owner.email} --slug NAME --type sesion:Sesión:60`")
            types = list(session.scalars(select(AppointmentType).where(AppointmentType.owner_id == owner.id)
                                         .order_by(AppointmentType.id)))
            for t in types:
                state = "" if t.active else " (inactive)"
                print(f"{settings.base_url}/book/{bs.slug}/{t.slug}  {t.name}, {t.duration_minutes} min{state}")
            if not types:
                print("no appointment types yet; add one with --type sesion:Sesión:60")
    finally:
        engine.dispose()
    return 0


def _upsert_type(session, owner_id: int, spec: str, args: argparse.Namespace,  # type: ignore[no-untyped-def]
                 now: datetime) -> str | None:
    from store.models import AppointmentType

    parts = spec.split(":")
    if len(parts) not in (3, 5) or not SLUG.match(parts[0]):
        return f"--type {spec!r}: expected slug:name:minutes[:buffer_before:buffer_after], e.g. sesion:Sesión:60"
    try:
        minutes, before, after = int(parts[2]), int(parts[3]) if len(parts) == 5 else 0, \
            int(parts[4]) if len(parts) == 5 else 0
    except ValueError:
        return f"--type {spec!r}: minutes and buffers must be whole numbers"
    if not 5 <= minutes <= 24 * 60 or before < 0 or after < 0:
        return f"--type {spec!r}: length must be 5-1440 minutes and buffers 0 or more"
    atype = session.scalar(select(AppointmentType).where(AppointmentType.owner_id == owner_id,
                                                         AppointmentType.slug == parts[0]))
    if atype is None:
        atype = AppointmentType(owner_id=owner_id, slug=parts[0], created_at=now, active=True)
        session.add(atype)
    atype.name, atype.duration_minutes = parts[1], minutes
    atype.buffer_before_minutes, atype.buffer_after_minutes = before, after
    atype.meeting = args.meeting or atype.meeting or "conference"
    atype.location = args.location or atype.location or ""
    atype.active = True
    return None
