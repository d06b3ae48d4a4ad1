"""Benchmark: slot computation and the reschedule page.

1. Three calendars with 2,000 busy events over 60 days (random 15-60 minute events at any time of day);
   the time to compute one week of slots (merging all busy intervals + ``free_slots``), p50 and p95 over many
   random weeks. Pure CPU, no I/O: what every page view costs on top of reading free/busy.
2. The same 2,000 events stored in a real Radicale server (three calendars), a real app server (gunicorn, SQLite,
   Redis) on localhost, and ``wrk`` (or a Python load loop when wrk is not installed) on the reschedule page of one
   appointment: requests/s and latency percentiles. Free/busy is read from Radicale on a cache miss and from the
   Redis cache (``web.booking.BUSY_TTL``) otherwise; the cold (uncached) page time is reported too.

Usage: ``.venv/bin/python bench/slots.py [--seconds 15] [--connections 16] [--workers 2] [--threads 4]``.
The last line printed is one JSON object with ``p95_slot_ms``, ``page_rps`` and ``page_p99_ms`` (targets: p95 slot
computation ≤ 50 ms; the page ≥ 200 requests/s with p99 ≤ 200 ms).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workflows.availability import BookingRules, Busy, SlotShape, free_slots  # noqa: E402

UTC = timezone.utc
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday 08:00 Madrid
TZ = "Europe/Madrid"


def make_events(n: int = 2000, days: int = 60, calendars: int = 3, seed: int = 7) -> list[list[tuple[datetime, datetime]]]:
    rnd = random.Random(seed)
    out: list[list[tuple[datetime, datetime]]] = [[] for _ in range(calendars)]
    for i in range(n):
        day = rnd.randrange(days)
        minute = rnd.randrange(0, 24 * 60, 15)  # any time of day: personal, family and work calendars
        start = START.replace(hour=0) + timedelta(days=day, minutes=minute)
        out[i % calendars].append((start, start + timedelta(minutes=rnd.choice((15, 30, 30, 45, 60)))))
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def bench_slots(events: list[list[tuple[datetime, datetime]]], runs: int = 300) -> dict[str, float]:
    rules = BookingRules.from_dict(TZ, {"step_minutes": 15, "min_notice_minutes": 120, "horizon_days": 90})
    shape = SlotShape(timedelta(minutes=60), timedelta(minutes=10), timedelta(minutes=10))
    rnd = random.Random(1)
    timings = []
    count = 0
    for _ in range(runs):
        now = START + timedelta(days=rnd.randrange(52), minutes=rnd.randrange(0, 1440, 5))
        t0 = time.perf_counter()
        busy = Busy(iv for cal in events for iv in cal)  # the page merges every calendar's answer each time
        slots = free_slots(rules, shape, busy, now=now, end=now + timedelta(days=7))
        timings.append((time.perf_counter() - t0) * 1000)
        count += len(slots)
    return {"p50_slot_ms": round(statistics.median(timings), 3), "p95_slot_ms": round(pct(timings, 95), 3),
            "slots_per_week": round(count / runs, 1)}


# ------------------------------------------------------------------------------------------------ page benchmark


def _ics_collection(events: list[tuple[datetime, datetime]], tag: str) -> str:
    parts = ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n"]
    for i, (a, b) in enumerate(events):
        parts.append(f"BEGIN:VEVENT\r\nUID:{tag}-{i}@bench\r\nDTSTAMP:20260101T000000Z\r\n"
                     f"DTSTART:{a:%Y%m%dT%H%M%SZ}\r\nDTEND:{b:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Busy {i}\r\nEND:VEVENT\r\n")
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts)


def _fill(server, url: str, events: list[tuple[datetime, datetime]], tag: str) -> None:  # type: ignore[no-untyped-def]
    """Upload the whole calendar in one PUT (Radicale splits it into one resource per event)."""
    import requests

    r = requests.put(url, data=_ics_collection(events, tag).encode(), auth=(server.username, server.password),
                     headers={"Content-Type": "text/calendar; charset=utf-8"}, timeout=300)
    r.raise_for_status()


def _setup_database(url: str, secret: str, server, events) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    from channels.links import make_token
    from reagenda.settings import load
    from store.crypto import encrypt_credentials
    from store.db import make_engine, make_sessionmaker
    from store.migrate import upgrade
    from store.models import AppointmentType, BookingSettings, Calendar, CalendarConnection, Owner
    from workflows.lifecycle import client_for, record_new

    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with make_sessionmaker(engine)() as s, s.begin():
        owner = Owner(email="bench@example.com", name="Ana", business_name="Estudio Lumen", timezone=TZ,
                      locale="es", policy={"deposit_cents": 3000}, invoice_seq=0, created_at=now)
        s.add(owner)
        s.flush()
        s.add(BookingSettings(owner_id=owner.id, slug="lumen", rules={"step_minutes": 30}, meeting_link="",
                              updated_at=now))
        s.add(AppointmentType(owner_id=owner.id, slug="sesion", name="Sesión", duration_minutes=60,
                              buffer_before_minutes=0, buffer_after_minutes=10, location="", meeting="none",
                              active=True, created_at=now))
        conn = CalendarConnection(owner_id=owner.id, provider="caldav", account="ana",
                                  credentials=encrypt_credentials(secret, {"url": server.url, "username": server.username,
                                                                           "password": server.password}),
                                  status="ok", status_detail="", created_at=now)
        s.add(conn)
        s.flush()
        tag = uuid.uuid4().hex[:6]
        for i, cal_events in enumerate(events):
            cal_url = server.make_calendar(f"cal{i}-{tag}")
            _fill(server, cal_url, cal_events, f"e{i}")
            s.add(Calendar(connection_id=conn.id, external_id=cal_url, name=f"cal{i}", watched=True,
                           receives_bookings=i == 0))
        client = client_for(s, owner, "marta@example.com", name="Marta", now=now, locale="es")
        starts = (now + timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
        appt = record_new(s, owner=owner, client=client, external_uid="bench-appt", starts_at=starts,
                          ends_at=starts + timedelta(hours=1), now=now)
        settings = load({"SECRET_KEY": secret, "DATABASE_URL": url, "REAGENDA_VAR_DIR": str(Path(url[10:]).parent)})
        token = make_token(settings, "reschedule", client_id=client.id, appointment_id=appt.id)
    engine.dispose()
    return token, appt.id


def _wait(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def _wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"page_rps": round(rps, 1), "page_p50_ms": ms("50"), "page_p99_ms": ms("99"),
            "page_non_2xx": int(non2xx.group(1)) if non2xx else 0, "tool": "wrk",
            "socket_errors": errors.group(1) if errors else ""}


def _python_loop(url: str, seconds: int, connections: int) -> dict[str, float]:
    import requests

    latencies: list[float] = []
    bad = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal bad
        with requests.Session() as http:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = http.get(url, timeout=10)
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(dt)
                    bad += r.status_code != 200

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return {"page_rps": round(len(latencies) / elapsed, 1), "page_p50_ms": round(statistics.median(latencies), 2),
            "page_p99_ms": round(pct(latencies, 99), 2), "page_non_2xx": bad, "tool": "python"}


def _page_cpu_ms(db_url: str, redis_url: str, secret: str, folder: Path, token: str, n: int = 200) -> float:
    """CPU time of one (cached) reschedule page in-process, through the Flask test client: the cost that decides
    requests/s on a given machine, independent of what else the machine is doing."""
    from reagenda.settings import load
    from web import create_app

    app = create_app(load({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "SECRET_KEY": secret,
                           "REAGENDA_VAR_DIR": str(folder), "BASE_URL": "http://127.0.0.1"}))
    client = app.test_client()
    url = f"/reschedule/{token}"
    for _ in range(20):
        assert client.get(url).status_code == 200
    t0 = time.process_time()
    for _ in range(n):
        client.get(url)
    return round((time.process_time() - t0) / n * 1000, 2)


def bench_page(events, seconds: int, connections: int, workers: int, threads: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    import requests

    from tests.radicale_server import RadicaleServer, free_port

    folder = Path(tempfile.mkdtemp(prefix="rg-bench-"))
    secret = uuid.uuid4().hex * 2
    redis_url = os.environ.get("BENCH_REDIS_URL")
    embedded = None
    if not redis_url:
        from reagenda.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis(folder / "redis.sock").start()
        redis_url = embedded.url
    server = RadicaleServer().start()
    proc = None
    try:
        t0 = time.perf_counter()
        db_url = f"sqlite:///{folder / 'bench.db'}"
        token, _ = _setup_database(db_url, secret, server, events)
        setup_s = time.perf_counter() - t0
        cpu_ms = _page_cpu_ms(db_url, redis_url, secret, folder, token)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "SECRET_KEY": secret,
               "BASE_URL": f"http://127.0.0.1:{port}", "REAGENDA_VAR_DIR": str(folder), "LOG_LEVEL": "warning"}
        proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-k", "gthread",
                                 "--threads", str(threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                                 "web:create_app()"], cwd=str(ROOT), env=env)
        url = f"http://127.0.0.1:{port}/reschedule/{token}"
        _wait(f"http://127.0.0.1:{port}/healthz")
        cold = []
        for i in range(3):  # bust the cache: each cold request reads all three calendars from Radicale
            import redis as redis_lib

            redis_lib.Redis.from_url(redis_url).flushdb()
            t1 = time.perf_counter()
            r = requests.get(url, timeout=60)
            cold.append((time.perf_counter() - t1) * 1000)
            assert r.status_code == 200, r.text[:500]
        slots = len(re.findall(r'name="slot"', r.text))
        for _ in range(20):  # warm every worker
            requests.get(url, timeout=10)
        load = _wrk(url, seconds, connections) if shutil.which("wrk") else _python_loop(url, seconds, connections)
        return {"setup_s": round(setup_s, 1), "cold_page_ms": round(statistics.median(cold), 1),
                "page_cpu_ms": cpu_ms,
                "page_slots": slots, **load}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        server.stop()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-page", action="store_true")
    args = parser.parse_args()
    events = make_events()
    result: dict[str, object] = {"events": sum(len(c) for c in events), "calendars": len(events), "days": 60}
    result.update(bench_slots(events))
    print(f"slots: p50 {result['p50_slot_ms']} ms, p95 {result['p95_slot_ms']} ms per week "
          f"({result['slots_per_week']} slots)", flush=True)
    if not args.skip_page:
        page = bench_page(events, args.seconds, args.connections, args.workers, args.threads)
        result.update(page)
        print(f"page: {page['page_rps']} req/s, p50 {page['page_p50_ms']} ms, p99 {page['page_p99_ms']} ms "
              f"({page['tool']}); cold page {page['cold_page_ms']} ms; {page['page_cpu_ms']} ms CPU per page",
              flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
