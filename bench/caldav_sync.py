"""CalDAV sync benchmark: Reagenda's sync engine against vdirsyncer, same calendar, same local Radicale.

    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python bench/caldav_sync.py --events 5000

Loads N events (one tenth of them weekly recurring series, every event with one client attendee, i.e. every
event is an appointment: the worst case for Reagenda, which also plans each appointment's steps) into a Radicale
started for the run, then measures in the same run:

- initial sync (empty store / empty folder),
- no-change sync (median of 3),
- sync after 1% of the events were moved by one hour.

Reagenda syncs into a SQLite store in a long-lived child process (as a worker does); its time is the
``sync_calendar`` call, its memory the child's peak RSS. vdirsyncer syncs to a local folder through its CLI, timed
as a user runs it (its interpreter start-up is shown separately in the table). Prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS = [f"client{i}@example.com" for i in range(400)]
OWNER = "owner@example.com"


# ------------------------------------------------------------------------------------------------ the calendar


def event_ics(i: int, start: datetime, *, weekly: bool) -> str:
    end = start + timedelta(hours=1)
    fmt = "%Y%m%dT%H%M%SZ"
    lines = ["BEGIN:VEVENT", f"UID:bench-{i}", "DTSTAMP:20260101T000000Z", f"DTSTART:{start.strftime(fmt)}",
             f"DTEND:{end.strftime(fmt)}", f"SUMMARY:Sesión {i}", f"ORGANIZER:mailto:{OWNER}",
             f"ATTENDEE;CN=Client {i};PARTSTAT=ACCEPTED:mailto:{CLIENTS[i % len(CLIENTS)]}",
             f"LOCATION:https://meet.jit.si/bench-{i}", f"DESCRIPTION:Booking {i}, reference {uuid.uuid4().hex}"]
    if weekly:
        lines.append("RRULE:FREQ=WEEKLY;COUNT=52")
    lines.append("END:VEVENT")
    return "\r\n".join(lines)


def wrap(*events: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Reagenda bench//EN", *events,
                        "END:VCALENDAR"]) + "\r\n"


def starts_for(n: int, now: datetime, *, all_future: bool = False, seed: int = 42) -> list[datetime]:
    """Start times like a real calendar's: spread over the last two years and the next 85 days (what a
    calendar that has been used for a while holds). ``all_future`` puts every event in the next 85 days instead:
    the worst case for Reagenda, where every event is an upcoming appointment whose steps must be planned."""
    rng = random.Random(seed)
    base = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    first_day = 0 if all_future else -730
    return [base + timedelta(days=rng.randrange(first_day, 85), hours=rng.randrange(0, 10)) for _ in range(n)]


def load_calendar(server, cal_url: str, starts: list[datetime]) -> None:  # type: ignore[no-untyped-def]
    """One PUT of a whole VCALENDAR on the collection: Radicale splits it into one object per UID."""
    import requests

    body = wrap(*(event_ics(i, s, weekly=i % 10 == 0) for i, s in enumerate(starts)))
    r = requests.put(cal_url, data=body.encode(), auth=(server.username, server.password),
                     headers={"Content-Type": "text/calendar; charset=utf-8"}, timeout=600)
    r.raise_for_status()


def change_some(server, cal_url: str, starts: list[datetime], share: float) -> int:  # type: ignore[no-untyped-def]
    """Move ``share`` of the events by one hour, one PUT each, as the owner's phone would."""
    import requests

    r = requests.request("PROPFIND", cal_url, auth=(server.username, server.password), headers={"Depth": "1"},
                         data='<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>', timeout=60)
    names = sorted({line.split("<")[0] for line in r.text.split("<d:href>" if "<d:href>" in r.text else
                                                                 "<D:href>")[1:]})
    by_uid = {n.rstrip("/").rsplit("/", 1)[-1]: n for n in names if n.endswith(".ics")}
    count = max(1, int(len(starts) * share))
    picked = random.Random(7).sample(range(len(starts)), count)
    for i in picked:
        href = next((h for name, h in by_uid.items() if name.startswith(f"bench-{i}.")), None)
        url = (cal_url.split("/", 3)[0] + "//" + cal_url.split("/", 3)[2] + href) if href else f"{cal_url}bench-{i}.ics"
        requests.put(url, data=wrap(event_ics(i, starts[i] + timedelta(hours=1), weekly=i % 10 == 0)).encode(),
                     auth=(server.username, server.password),
                     headers={"Content-Type": "text/calendar; charset=utf-8"}, timeout=60).raise_for_status()
    return count


def warm_up(server, cal_url: str) -> float:  # type: ignore[no-untyped-def]
    """Radicale parses and caches every item the first time anyone lists or reports on it (over a minute for
    5000 items on a busy machine); whichever sync ran first would pay that for the other. One untimed pass of
    each request kind both tools use makes the comparison about the clients."""
    import requests

    auth, xml = (server.username, server.password), {"Content-Type": "application/xml; charset=utf-8"}
    t0 = time.perf_counter()
    requests.request("REPORT", cal_url, auth=auth, headers=xml, timeout=900, data=(
        '<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level>'
        "<d:prop><d:getetag/></d:prop></d:sync-collection>")).raise_for_status()
    requests.request("PROPFIND", cal_url, auth=auth, headers={**xml, "Depth": "1"}, timeout=900,
                     data='<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>').raise_for_status()
    requests.request("REPORT", cal_url, auth=auth, headers={**xml, "Depth": "1"}, timeout=900, data=(
        '<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
        '<c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>'
    )).raise_for_status()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ Reagenda child


def reagenda_child(db_path: str, cal_url: str, url: str, username: str, password: str) -> None:
    """A long-lived process like a worker: reads one command per line ("sync" / "quit"), answers JSON."""
    from reagenda import runtime
    from reagenda.settings import load
    from store.crypto import encrypt_credentials
    from store.models import Calendar, CalendarConnection, Owner
    from workflows.sync import sync_calendar

    settings = load({"DATABASE_URL": f"sqlite:///{db_path}", "REDIS_URL": "redis://127.0.0.1:1/0",
                     "SECRET_KEY": "bench-secret-key-not-for-production", "REAGENDA_VAR_DIR": str(Path(db_path).parent / "var")})
    subprocess.run([sys.executable, "-c", f"from store.migrate import upgrade; upgrade({settings.database_url!r})"],
                   check=True, cwd=ROOT)  # in its own process: a worker does not carry alembic around
    ctx = runtime.build(settings, check=False)
    from worker import preload

    preload()  # what a worker has imported before its first job (the connector registry loads every provider)
    now = ctx.clock.now()
    with ctx.session() as s:
        owner = Owner(email=OWNER, name="Bench", business_name="Bench", timezone="Europe/Madrid", locale="es",
                      policy={}, invoice_seq=0, created_at=now)
        s.add(owner)
        s.flush()
        conn = CalendarConnection(owner_id=owner.id, provider="caldav", account=OWNER, status="ok",
                                  status_detail="", created_at=now,
                                  credentials=encrypt_credentials(settings.secret_key, {
                                      "url": url, "username": username, "password": password}))
        s.add(conn)
        s.flush()
        cal = Calendar(connection_id=conn.id, external_id=cal_url, name="bench", watched=True,
                       receives_bookings=False, cursor=None)
        s.add(cal)
        s.flush()
        calendar_id = cal.id
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "sync":
            break
        t0 = time.perf_counter()
        result = sync_calendar(ctx, calendar_id, force=True)
        elapsed = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"s": elapsed, "fetch_s": result.fetch_s, "store_s": result.store_s,
                          "status": result.status, "full": result.full,
                          "events": len(result.events), "peak_rss_mb": rss_mb}), flush=True)
    ctx.close()


class Reagenda:
    def __init__(self, folder: Path, cal_url: str, server) -> None:  # type: ignore[no-untyped-def]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(folder / "reagenda.db"), cal_url, server.url, server.username,
             server.password], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Reagenda sync process died; run it alone to see its error")
        return json.loads(line)

    def sync(self) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write("sync\n")
        self.proc.stdin.flush()
        got = self._read()
        if got["status"] != "ok":
            raise RuntimeError(f"Reagenda sync failed: {got}")
        return got

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------------------------------------ vdirsyncer


class Vdirsyncer:
    def __init__(self, folder: Path, cal_url: str, server) -> None:  # type: ignore[no-untyped-def]
        self.exe = shutil.which("vdirsyncer", path=str(Path(sys.executable).parent)) or shutil.which("vdirsyncer")
        if not self.exe:
            raise SystemExit("vdirsyncer is not installed: .venv/bin/pip install -e '.[bench]'")
        (folder / "local").mkdir()
        (folder / "status").mkdir()
        self.config = folder / "vdirsyncer.conf"
        self.config.write_text(f"""[general]
status_path = "{folder / 'status'}/"

[pair bench]
a = "bench_remote"
b = "bench_local"
collections = null
conflict_resolution = "a wins"

[storage bench_remote]
type = "caldav"
url = "{cal_url}"
username = "{server.username}"
password = "{server.password}"

[storage bench_local]
type = "filesystem"
path = "{folder / 'local'}/"
fileext = ".ics"
""")
        self.env = {**os.environ, "VDIRSYNCER_CONFIG": str(self.config)}
        self.local = folder / "local"
        r = subprocess.run([self.exe, "discover", "bench"], env=self.env, input="y\n", capture_output=True,
                           text=True)  # one-time setup, not timed
        if r.returncode != 0:
            raise RuntimeError(f"vdirsyncer discover failed: {r.stderr[-800:]}")

    def startup_s(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.exe, "--version"], env=self.env, capture_output=True, check=True)
        return time.perf_counter() - t0

    def sync(self) -> float:
        t0 = time.perf_counter()
        r = subprocess.run([self.exe, "sync"], env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"vdirsyncer sync failed: {r.stderr[-800:]}")
        return elapsed


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--all-future", action="store_true",
                        help="every event in the next 85 days (worst case) instead of spread over two years")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        reagenda_child(*args.child)
        return

    from tests.radicale_server import RadicaleServer

    folder = Path(tempfile.mkdtemp(prefix="rg-bench-"))
    server = RadicaleServer(username="bench").start()
    reagenda = None
    try:
        cal_url = server.make_calendar("work")
        now = datetime.now(timezone.utc)
        starts = starts_for(args.events, now, all_future=args.all_future)
        upcoming = sum(1 for st in starts if st > now)
        t0 = time.perf_counter()
        load_calendar(server, cal_url, starts)
        load_s = time.perf_counter() - t0
        warm_s = warm_up(server, cal_url)
        vdir = Vdirsyncer(folder, cal_url, server)
        reagenda = Reagenda(folder, cal_url, server)

        rows: dict[str, tuple[float, float]] = {}
        first = reagenda.sync()
        rows["initial"] = (first["s"], vdir.sync())
        ours, theirs = [], []
        for _ in range(3):
            ours.append(reagenda.sync()["s"])
            theirs.append(vdir.sync())
        rows["no-change"] = (statistics.median(ours), statistics.median(theirs))
        changed = change_some(server, cal_url, starts, 0.01)
        after = reagenda.sync()
        rows["1% changed"] = (after["s"], vdir.sync())
        peak = reagenda.sync()["peak_rss_mb"]
        startup = vdir.startup_s()
        files = len(list(vdir.local.glob("*.ics")))
    finally:
        if reagenda is not None:
            reagenda.close()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

    ratio = {k: (a / b if b else float("inf")) for k, (a, b) in rows.items()}
    print(f"CalDAV sync benchmark: {args.events} events ({args.events // 10} weekly series of 52; {upcoming} start "
          f"in the next 85 days), Radicale, load {load_s:.1f} s; {changed} events changed; vdirsyncer wrote "
          f"{files} files")
    print(f"{'sync':<12} {'reagenda s':>11} {'vdirsyncer s':>13} {'ratio':>7}")
    for name, (a, b) in rows.items():
        print(f"{name:<12} {a:>11.3f} {b:>13.3f} {ratio[name]:>7.3f}")
    print(f"vdirsyncer interpreter start-up (included in its times): {startup:.3f} s")
    print(f"reagenda initial sync: {first['events']} appointments created; fetch+parse {first['fetch_s']:.3f} s "
          f"(ratio {first['fetch_s'] / rows['initial'][1]:.3f}), store+plan {first['store_s']:.3f} s")
    print(f"peak RSS of the Reagenda sync process: {peak:.1f} MB; Radicale warm-up (untimed): {warm_s:.1f} s")
    print(json.dumps({
        "events": args.events, "initial_s": round(rows["initial"][0], 3), "initial_vdirsyncer_s": round(rows["initial"][1], 3),
        "nochange_s": round(rows["no-change"][0], 4), "nochange_vdirsyncer_s": round(rows["no-change"][1], 3),
        "change_s": round(rows["1% changed"][0], 3), "change_vdirsyncer_s": round(rows["1% changed"][1], 3),
        "initial_ratio": round(ratio["initial"], 3), "nochange_ratio": round(ratio["no-change"], 4),
        "change_ratio": round(ratio["1% changed"], 3), "peak_rss_mb": round(peak, 1),
        "appointments_created": first["events"], "vdirsyncer_startup_s": round(startup, 3),
        "upcoming_events": upcoming, "all_future": args.all_future,
        "initial_fetch_s": round(first["fetch_s"], 3), "initial_store_s": round(first["store_s"], 3),
        "initial_fetch_ratio": round(first["fetch_s"] / rows["initial"][1], 3),
    }))


if __name__ == "__main__":
    main()
