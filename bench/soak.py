"""Soak: sync, dispatch and web traffic together against real processes, for minutes, on this machine.

    .venv/bin/python bench/soak.py                    # 500 owners, 50,000 appointments, 10 minutes
    .venv/bin/python bench/soak.py --minutes 3        # a shorter run
    .venv/bin/python bench/soak.py --database-url postgresql://... --redis-url redis://...   # your own services

What runs (all against a private PostgreSQL and Redis started by tests/faults/harness.py unless given URLs):
- the real ``reagenda dispatcher``, ``--workers`` x ``reagenda worker --simple`` and ``reagenda web`` (gunicorn);
- dispatch: ``--due-per-minute`` reminder steps fall due every minute of the run (on top of 50,000 appointments
  whose other steps lie in the future), each sent through the outbox channel;
- sync: ``--sync-owners`` owners have a Google calendar on a local fake of the Calendar API; a driver thread syncs
  them continuously with the real connector and sync engine while new events and moves keep arriving;
- web: ``--web-clients`` threads, each signed in as a random owner, load the dashboard, clients, outbox and an
  appointment page in a loop.

At the end it prints messages sent, p50/p99 lateness (sent_at minus due time), p50/p99 page latency, errors, and the
resident memory of every process after warm-up and at the end (growth over 10% is flagged). Not a test: it runs
outside CI. Exit status 1 when a step was lost, an error occurred or memory grew beyond 10%.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from connectors.google import GoogleConnector  # noqa: E402
from connectors.http_retry import Retrier  # noqa: E402
from reagenda import runtime  # noqa: E402
from reagenda.settings import load  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.models import Appointment, Calendar, CalendarConnection, Client, Message, Owner, Step  # noqa: E402
from tests.fakes.google_calendar import FakeGoogleCalendar  # noqa: E402
from tests.faults.harness import Fleet, PrivatePostgres, PrivateRedis, free_port, reagenda_env, wait_for  # noqa: E402
from workflows.planner import step_key  # noqa: E402
from workflows.policy import Policy  # noqa: E402
from workflows.sync import sync_calendar  # noqa: E402

PASSWORD = "soak-password-123"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# ------------------------------------------------------------------------------------------------ seeding


def seed(ctx: runtime.Context, args: argparse.Namespace, now: datetime) -> dict[int, datetime]:
    """Owners, clients and appointments in bulk; returns {step id: due time} for the steps due during the run."""
    policy = Policy().to_dict()
    pw = generate_password_hash(PASSWORD, method="scrypt:1024:8:1")  # cheap hash: the soak measures pages, not scrypt
    due_in_run = args.due_per_minute * args.minutes
    with ctx.session() as s:
        owners = [Owner(email=f"owner{i}@soak.test", name=f"Owner {i}", business_name=f"Estudio {i}",
                        password_hash=pw, timezone="Europe/Madrid", locale="es" if i % 2 else "en",
                        policy={}, invoice_seq=0, created_at=now) for i in range(args.owners)]
        s.add_all(owners)
        s.flush()
        per_owner = args.appointments // args.owners
        clients = [Client(owner_id=o.id, email=f"c{o.id}-{n}@soak.test", name=f"Client {n}", phone="",
                          preferred_channel="email", opted_out=[], state="active", created_at=now)
                   for o in owners for n in range(per_owner)]
        s.add_all(clients)
        s.flush()
        appts = []
        for n, c in enumerate(clients):
            if n < due_in_run:  # its 2-hour reminder falls due during the run, evenly spread
                starts = now + timedelta(hours=2, seconds=60 * args.minutes * n / max(due_in_run, 1))
            else:
                starts = now + timedelta(hours=3) + timedelta(minutes=random.randrange(14 * 24 * 60))
            appts.append(Appointment(
                owner_id=c.owner_id, client_id=c.id, external_uid=f"soak-{n}", recurrence_id="", title="Sesión",
                starts_at=starts, ends_at=starts + timedelta(hours=1), location="",
                meeting_link="https://meet.google.com/abc-defg-hij", status="scheduled", confirmation="confirmed",
                attendance="unknown", policy=policy, start_seen_at=now - timedelta(days=3),
                created_at=now - timedelta(days=3), updated_at=now))
        s.add_all(appts)
        s.flush()
        steps = []
        for a in appts:
            for hours in (48, 2):
                due = a.starts_at - timedelta(hours=hours)
                if due < now:
                    continue
                steps.append(Step(owner_id=a.owner_id, kind=f"reminder_{hours}h", subject_type="appointment",
                                  subject_id=a.id, due_at=due, state="pending", attempts=0, max_attempts=5,
                                  idempotency_key=step_key(a.id, f"reminder_{hours}h", a.starts_at),
                                  payload={"hours": hours, "starts_at": a.starts_at.isoformat()}, created_at=now,
                                  outcome=""))
        s.add_all(steps)
        s.flush()
        end = now + timedelta(minutes=args.minutes)
        return {st.id: st.due_at for st in steps if st.due_at <= end}


# ------------------------------------------------------------------------------------------------ load


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.page_ms: list[float] = []
        self.by_path: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.syncs = 0
        self.sync_backoffs = 0
        self.sync_problems: list[str] = []

    def error(self, what: str) -> None:
        with self.lock:
            if len(self.errors) < 1000:
                self.errors.append(what)


def web_client(base: str, owners: list[int], stop: threading.Event, stats: Stats, appt_ids: list[int]) -> None:
    """Owners who stay signed in, as real ones do: each client signs in once per owner it serves and reuses the
    session, so the run measures pages rather than the login throttle (50 sign-ins per address per 15 min)."""
    rng = random.Random()
    sessions: dict[int, requests.Session] = {}
    try:
        while not stop.is_set():
            owner = rng.choice(owners)
            try:
                s = sessions.get(owner)
                if s is None:
                    s = requests.Session()
                    token = CSRF.search(s.get(f"{base}/login", timeout=30).text)
                    r = s.post(f"{base}/login", data={"csrf_token": token.group(1) if token else "",
                                                      "email": f"owner{owner}@soak.test", "password": PASSWORD},
                               allow_redirects=False, timeout=30)
                    if r.status_code != 302:
                        stats.error(f"login answered {r.status_code}")
                        s.close()
                        stop.wait(1)
                        continue
                    sessions[owner] = s
                for _ in range(10):
                    if stop.is_set():
                        break
                    path = rng.choice(["/", "/clients", "/outbox", "/ledger", "/replies", "/insights"])
                    t0 = time.monotonic()
                    page = s.get(f"{base}{path}", timeout=30)
                    ms = (time.monotonic() - t0) * 1000
                    with stats.lock:
                        stats.page_ms.append(ms)
                        stats.by_path.setdefault(path, []).append(ms)
                    if page.status_code >= 500:
                        stats.error(f"GET {path} answered {page.status_code}")
            except requests.RequestException as exc:
                stats.error(f"web: {type(exc).__name__}: {exc}")
                stop.wait(1)
    finally:
        for s in sessions.values():
            s.close()


def sync_driver(ctx: runtime.Context, google: FakeGoogleCalendar, cal_ids: list[tuple[int, str]],
                stop: threading.Event, stats: Stats) -> None:
    connector = GoogleConnector(google.issue_tokens(), client_id=google.client_id,
                                client_secret=google.client_secret, api_endpoint=google.api_endpoint,
                                token_uri=google.token_uri, retrier=Retrier(sleep=lambda s: None, attempts=2))
    rng = random.Random(7)
    events: dict[str, list[str]] = {ext: [] for _, ext in cal_ids}
    while not stop.is_set():
        for cal_id, ext in cal_ids:
            if stop.is_set():
                return
            start = datetime.now(timezone.utc) + timedelta(days=rng.randrange(2, 14), hours=rng.randrange(8, 18))
            if events[ext] and rng.random() < 0.3:
                google.update_event(ext, rng.choice(events[ext]), start=start, end=start + timedelta(hours=1))
            else:
                events[ext].append(google.add_event(ext, "Cita", start, start + timedelta(hours=1),
                                                    attendees=[f"synced-{rng.randrange(10**6)}@soak.test"]))
            try:
                result = sync_calendar(ctx, cal_id, connector=connector, force=True)
                stats.syncs += 1
                if result.status != "ok":
                    stats.sync_backoffs += 1
                    if len(stats.sync_problems) < 3:
                        stats.sync_problems.append(f"{result.status}: {result.error[:200]}")
            except Exception as exc:  # noqa: BLE001 - count it, keep the load going
                stats.error(f"sync: {type(exc).__name__}: {exc}")
        stop.wait(1)


def make_sync_calendars(ctx: runtime.Context, google: FakeGoogleCalendar, n: int, now: datetime) -> list[tuple[int, str]]:
    out = []
    with ctx.session() as s:
        owners = list(s.scalars(select(Owner).order_by(Owner.id).limit(n)))
        for o in owners:
            ext = f"cal-{o.id}@soak.test"
            google.add_calendar(ext, o.name)
            conn = CalendarConnection(owner_id=o.id, provider="google", account=o.email, credentials="",
                                      status="ok", status_detail="", created_at=now)
            s.add(conn)
            s.flush()
            # Synced by the driver thread (the fake's endpoint cannot be configured in the worker processes), so
            # the periodic sync in the workers must not find them due; each forced sync pushes this on by 5 min.
            cal = Calendar(connection_id=conn.id, external_id=ext, name=ext, watched=True, receives_bookings=False,
                           next_sync_at=now + timedelta(days=1))
            s.add(cal)
            s.flush()
            out.append((cal.id, ext))
    return out


def tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--owners", type=int, default=500)
    p.add_argument("--appointments", type=int, default=50_000)
    p.add_argument("--due-per-minute", type=int, default=300, help="reminders falling due each minute of the run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--web-clients", type=int, default=4)
    p.add_argument("--sync-owners", type=int, default=50)
    p.add_argument("--database-url")
    p.add_argument("--redis-url")
    args = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="rg-soak-"))
    pg = red = None
    if not args.database_url:
        pg = PrivatePostgres().start()  # its own folder, owned by the postgres OS user when run as root
        args.database_url = pg.create_database("soak")
    if not args.redis_url:
        (root / "redis").mkdir()
        red = PrivateRedis(root / "redis").start()
        args.redis_url = red.url
    env = reagenda_env(root / "var", args.database_url, args.redis_url, LOG_LEVEL="warning", RECONCILE_AFTER="60")
    settings = load(env)
    upgrade(settings.database_url)
    ctx = runtime.build(settings)
    fleet = Fleet(root, env)
    stop = threading.Event()
    stats = Stats()
    google = FakeGoogleCalendar()
    google.start()
    threads: list[threading.Thread] = []
    try:
        t0 = time.monotonic()
        now = datetime.now(timezone.utc)
        due = seed(ctx, args, now)
        print(f"seeded {args.owners} owners, {args.appointments} appointments, {len(due)} steps due during the run "
              f"in {time.monotonic() - t0:.0f}s", flush=True)
        cal_ids = make_sync_calendars(ctx, google, args.sync_owners, now)
        # Seeding takes minutes at full size: move the run's due times to start in 15 s (the processes' start-up),
        # so lateness measures the running system, not a seeding backlog (each reminder stays before its start).
        shift = datetime.now(timezone.utc) + timedelta(seconds=15) - now
        due = {sid: at + shift for sid, at in due.items()}
        with ctx.session() as s:
            s.execute(update(Step), [{"id": sid, "due_at": at} for sid, at in due.items()])

        port = free_port()
        procs = [fleet.start("dispatcher")] + [fleet.start("worker", "--simple") for _ in range(args.workers)]
        procs.append(fleet.start("web", "--port", str(port), "--workers", "2"))
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).status_code < 500, 60, "reagenda web")
        with ctx.session() as s:
            appt_ids = list(s.scalars(select(Appointment.id).limit(1000)))
        per_client = 10  # signed-in owners per web client: 4 clients x 10 stay under the per-address limit
        threads = [threading.Thread(target=web_client, daemon=True,
                                    args=(base, [(i * per_client + k) % args.owners for k in range(per_client)],
                                          stop, stats, appt_ids))
                   for i in range(args.web_clients)]
        threads.append(threading.Thread(target=sync_driver, args=(ctx, google, cal_ids, stop, stats), daemon=True))
        for t in threads:
            t.start()

        run_s = args.minutes * 60
        warm = min(60.0, run_s * 0.2)
        time.sleep(warm)
        mem_start = {p.name: tree_rss(p.pid) for p in procs}
        time.sleep(max(0.0, run_s - warm))
        mem_end = {p.name: tree_rss(p.pid) for p in procs}
        stop.set()
        for t in threads:
            t.join(timeout=40)
        # let the last due steps finish (they fell due at the very end of the run)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with ctx.session() as s:
                left = s.scalar(select(func.count()).select_from(Step).where(
                    Step.id.in_(list(due)), Step.state.not_in(("done", "skipped", "failed", "cancelled"))))
            if not left:
                break
            time.sleep(1)

        with ctx.session() as s:
            rows = s.execute(select(Message.step_id, Message.sent_at).where(Message.status == "sent")).all()
            states = dict(s.execute(select(Step.state, func.count()).where(Step.id.in_(list(due)))
                                    .group_by(Step.state)).all())
        lateness = [(sent - due[sid]).total_seconds() for sid, sent in rows if sid in due and sent is not None]
        dead = [p.name for p in procs if not p.alive()]
        print(f"\n=== soak: {args.minutes:g} min, {args.owners} owners, {args.appointments} appointments, "
              f"{args.workers} workers, {args.web_clients} web clients, {len(cal_ids)} synced calendars ===")
        print(f"messages sent:        {len(rows)} (steps due in the run: {len(due)}; states {states})")
        print(f"lateness:             p50 {pct(lateness, 50):.1f} s, p99 {pct(lateness, 99):.1f} s, "
              f"max {max(lateness, default=0):.1f} s")
        print(f"page latency:         p50 {pct(stats.page_ms, 50):.0f} ms, p99 {pct(stats.page_ms, 99):.0f} ms "
              f"({len(stats.page_ms)} pages)")
        for path, values in sorted(stats.by_path.items()):
            print(f"  {path:18} p50 {pct(values, 50):6.0f} ms, p99 {pct(values, 99):6.0f} ms ({len(values)})")
        print(f"syncs:                {stats.syncs} ({stats.sync_backoffs} not ok"
              + (f", e.g. {stats.sync_problems}" if stats.sync_problems else "") + ")")
        print(f"errors:               {len(stats.errors)}" + (f" e.g. {stats.errors[:3]}" if stats.errors else ""))
        print(f"processes died:       {dead or 'none'}")
        grew = []
        for name in mem_start:
            a, b = mem_start[name], mem_end[name]
            growth = (b - a) / a * 100 if a else 0.0
            flag = "  <-- grew more than 10%" if growth > 10 else ""
            if growth > 10:
                grew.append(name)
            print(f"memory {name:12} start {a / 2**20:7.1f} MiB, end {b / 2**20:7.1f} MiB ({growth:+.1f}%){flag}")
        lost = len(due) - states.get("done", 0) - states.get("skipped", 0)
        ok = not stats.errors and not dead and not grew and lost == 0
        print("result:               " + ("OK" if ok else f"PROBLEMS (lost {lost}, grew {grew})"))
        return 0 if ok else 1
    finally:
        stop.set()
        fleet.stop_all()
        google.stop()
        ctx.close()
        if red is not None:
            red.close()
        if pg is not None:
            pg.close()


if __name__ == "__main__":
    sys.exit(main())
