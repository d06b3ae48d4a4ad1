"""Benchmark: dispatch lateness and drain rate of the workflow engine on PostgreSQL + Redis (issue 4).

Seeds N appointments (default 100,000; each with a sent confirmation request (step and message), a 48 h and a 2 h
reminder and an arrival check: about 4 steps each, 400,000 rows) into a fresh PostgreSQL database, vacuumed and
analyzed, so that the 48 h reminders fall
due across a window (default 10 minutes, wall clock) at ``--due-rate`` per second (default 200; when that asks for
more steps than there are appointments, the 2 h reminders of the last appointments are spread over it too). Then runs the real dispatcher and W real RQ workers
(``reagenda worker --simple`` subprocesses) against a private redis-server, sending through the real SendGrid
channel to a local fake email API. Measures lateness (Message.sent_at − Step.due_at) p50/p99/max, throughput, peak
Redis memory and database size. Phase 2 drains a backlog (B steps due at once) for steps/s. Finally it replays the
same due times through the reference design (a 60-second poll taking at most 100 steps per tick) and prints those
figures too. The last line is JSON with ``p99_lateness_s``, ``drain_steps_per_s``, ``redis_peak_mb``.

    ./scripts/bench.sh dispatch                             # full size (~20 min on 2 cores)
    ./scripts/bench.sh dispatch --appointments 5000 --window 60 --backlog 2000   # quick look

Needs a PostgreSQL server (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres, used to
CREATE and DROP a scratch database) and the redis-server binary.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
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

import psutil  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import func, insert, select, text, update  # noqa: E402

from reagenda import runtime  # noqa: E402
from reagenda.embedded_redis import EmbeddedRedis  # noqa: E402
from reagenda.settings import load  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.models import Appointment, Client, Message, Owner, Step  # noqa: E402
from workflows import dispatcher  # noqa: E402
from workflows.planner import AppointmentFacts, plan_appointment  # noqa: E402
from workflows.policy import Policy  # noqa: E402

UTC = timezone.utc


class FakeEmailAPI(asyncio.Protocol):
    """SendGrid's v3 mail send, as far as the client library needs: ``POST /v3/mail/send`` with a Bearer key is
    answered 202 with an X-Message-Id, on a kept-alive HTTP/1.1 connection; anything else 404 or 401.

    Lean on purpose (asyncio, no HTTP framework): the real API's CPU is not on our machine, so the less the fake
    costs here, the more the figures measure Reagenda. It reads each request whole (headers, then Content-Length
    bytes of body) before answering, as a server must."""

    counter = None  # a multiprocessing.Value shared with the bench process

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            request_line, *lines = self.buffer[:head_end].decode("latin-1").split("\r\n")
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (line.partition(":") for line in lines)}
            end = head_end + 4 + int(headers.get("content-length") or 0)
            if len(self.buffer) < end:
                return  # the rest of the body is still on its way
            self.buffer = self.buffer[end:]
            if not request_line.startswith("POST /v3/mail/send "):
                self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif not headers.get("authorization", "").startswith("Bearer SG."):
                self.transport.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            else:
                with FakeEmailAPI.counter.get_lock():
                    FakeEmailAPI.counter.value += 1
                self.transport.write(b"HTTP/1.1 202 Accepted\r\nX-Message-Id: " + uuid.uuid4().hex.encode()
                                     + b"\r\nContent-Length: 0\r\n\r\n")


def _serve(port_out, counter) -> None:  # type: ignore[no-untyped-def]
    FakeEmailAPI.counter = counter

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FakeEmailAPI, "127.0.0.1", 0, backlog=512)
        port_out.value = server.sockets[0].getsockname()[1]
        await server.serve_forever()

    asyncio.run(main())


def start_fake_api():  # type: ignore[no-untyped-def]
    """The fake email API in its own process, so it does not compete with the dispatcher for this one's GIL."""
    ctx = multiprocessing.get_context("spawn")
    port, counter = ctx.Value("i", 0), ctx.Value("l", 0)
    proc = ctx.Process(target=_serve, args=(port, counter), daemon=True)
    proc.start()
    for _ in range(200):
        if port.value:
            break
        time.sleep(0.05)
    return proc, port.value, counter


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def seed(ctx: runtime.Context, n: int, t0: datetime, window_s: float, due: int, owners: int = 100) -> None:
    """Appointments starting 48 h + [0, window) after t0, so their 48 h reminders fall due across the window (the
    first ``due`` of them; the rest start days later, so their steps are in the table but not due)."""
    # Quiet hours off: the bench runs whenever it is run, and night would move the reminders out of the window.
    policy = Policy(confirmations=False, quiet_start="00:00", quiet_end="00:00").to_dict()
    created = t0 - timedelta(days=3)
    with ctx.engine.begin() as conn:
        conn.execute(insert(Owner), [dict(email=f"owner{i}@bench.test", name=f"Owner {i}", business_name=f"Estudio {i}",
                                          timezone="Europe/Madrid", locale="es", policy={}, invoice_seq=0,
                                          created_at=created) for i in range(owners)])
        owner_ids = list(conn.scalars(select(Owner.id).order_by(Owner.id)))
        for start in range(0, n, 10_000):
            batch = range(start, min(n, start + 10_000))
            conn.execute(insert(Client), [dict(owner_id=owner_ids[i % owners], email=f"c{i}@bench.test",
                                               name=f"Client {i}", phone="", timezone="Europe/Madrid", locale="es",
                                               preferred_channel="email", opted_out=[], state="active",
                                               created_at=created, policy_overrides={}) for i in batch])
        client_ids = list(conn.scalars(select(Client.id).order_by(Client.id)))
        for start in range(0, n, 10_000):
            rows = []
            for i in range(start, min(n, start + 10_000)):
                starts = (t0 + timedelta(hours=48, seconds=window_s * i / due) if i < due
                          else t0 + timedelta(days=5, seconds=i))
                rows.append(dict(owner_id=owner_ids[i % owners], client_id=client_ids[i], external_uid=f"b{i}",
                                 recurrence_id="", title="Sesión", starts_at=starts,
                                 ends_at=starts + timedelta(hours=1), location="",
                                 meeting_link="https://meet.google.com/abc-defg-hij", status="scheduled",
                                 confirmation="confirmed", attendance="unknown", policy=policy,
                                 start_seen_at=created, created_at=created, updated_at=created))
            conn.execute(insert(Appointment), rows)
        appts = conn.execute(select(Appointment.id, Appointment.owner_id, Appointment.starts_at)
                             .order_by(Appointment.id)).all()
        pol = Policy.from_dict(policy)
        rows = []
        for appt_id, owner_id, starts in appts:
            facts = AppointmentFacts(id=appt_id, owner_id=owner_id, starts_at=starts, status="scheduled",
                                     start_seen_at=created, client_timezone="Europe/Madrid", created_at=created,
                                     confirmation="confirmed")
            rows.append(dict(owner_id=owner_id, kind="confirm_request", subject_type="appointment",
                             subject_id=appt_id, due_at=created, state="done", attempts=1, max_attempts=5,
                             idempotency_key=f"a{appt_id}-confirm_request", payload={}, outcome="sent (seeded)",
                             created_at=created, finished_at=created))
            for p in plan_appointment(facts, pol):
                rows.append(dict(owner_id=owner_id, kind=p.kind, subject_type="appointment", subject_id=appt_id,
                                 due_at=p.due_at, state="pending", attempts=0, max_attempts=5, idempotency_key=p.key,
                                 payload=p.payload, outcome="", created_at=created, finished_at=None))
            if len(rows) >= 20_000:
                conn.execute(insert(Step), rows)
                rows = []
        if rows:
            conn.execute(insert(Step), rows)
        # The confirmation requests were sent: their messages are in the table, as in a store that has been
        # running (the idempotency and daily-limit lookups then search a real index, not an empty table).
        clients = dict(conn.execute(select(Appointment.id, Appointment.client_id)).all())
        sent = conn.execute(select(Step.id, Step.owner_id, Step.subject_id, Step.idempotency_key)
                            .where(Step.kind == "confirm_request")).all()
        body = "Hola, confirma tu cita del jueves a las 10:00. " * 6
        for start in range(0, len(sent), 10_000):
            conn.execute(insert(Message), [dict(
                owner_id=owner_id, client_id=clients[appt_id], appointment_id=appt_id, step_id=step_id,
                kind="confirm_request", channel="email", recipient=f"c{clients[appt_id]}@bench.test", locale="es",
                subject="Confirma tu cita", body_text=body, body_html="", idempotency_key=key, status="sent",
                provider_id=uuid.uuid4().hex, error="", sent_at=created, created_at=created)
                for step_id, owner_id, appt_id, key in sent[start:start + 10_000]])


def redis_sampler(conn: redis.Redis, stop: threading.Event, out: dict[str, float]) -> None:
    base = conn.info("memory")["used_memory"]
    out["base"] = base
    peak = base
    while not stop.is_set():
        peak = max(peak, conn.info("memory")["used_memory"])
        out["peak"] = peak
        stop.wait(0.2)


def run_dispatcher(ctx: runtime.Context, stop: threading.Event, interval: float) -> None:
    last = 0.0
    while not stop.is_set():
        while dispatcher.dispatch_due(ctx) >= ctx.settings.dispatch_batch and not stop.is_set():
            pass
        if time.monotonic() - last > 30:
            dispatcher.reconcile(ctx)
            last = time.monotonic()
        stop.wait(interval)


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds used so far by each group of processes (PostgreSQL: every server process)."""
    out: dict[str, float] = {}
    for name, pids in {**groups, "postgres": [p.pid for p in psutil.process_iter(["name"])
                                              if (p.info["name"] or "").startswith("postgres")]}.items():
        total = 0.0
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[name] = total
    return out


def lateness(ctx: runtime.Context, since: datetime, until: datetime | None = None) -> list[float]:
    with ctx.session() as s:
        q = (select(Message.sent_at, Step.due_at).join(Step, Step.id == Message.step_id)
             .where(Message.status == "sent", Step.due_at >= since))
        if until is not None:
            q = q.where(Step.due_at <= until)
        return [max(0.0, (sent - due).total_seconds()) for sent, due in s.execute(q)]


def poll_reference(due_times: list[float], tick_s: float = 60.0, per_tick: int = 100) -> tuple[list[float], float]:
    """Replay due times (seconds) through a poll every ``tick_s`` taking at most ``per_tick`` oldest due steps,
    executing instantly. Returns per-step lateness and the time the last one ran."""
    due = sorted(due_times)
    late: list[float] = []
    i, t = 0, 0.0
    while i < len(due):
        t += tick_s
        taken = 0
        while i < len(due) and due[i] <= t and taken < per_tick:
            late.append(t - due[i])
            i += 1
            taken += 1
    return late, t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--appointments", type=int, default=100_000)
    ap.add_argument("--window", type=float, default=600.0, help="seconds across which the reminders fall due")
    ap.add_argument("--due-rate", type=float, default=200.0, help="due steps per second in the window")
    ap.add_argument("--backlog", type=int, default=20_000, help="steps made due at once for the drain phase")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--fork", action="store_true", help="RQ's default forking Worker instead of --simple")
    ap.add_argument("--interval", type=float, default=0.2, help="dispatcher interval (s)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()

    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"reagenda_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    db_url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="rg-bench-"))
    server = EmbeddedRedis(tmp / "redis.sock").start()
    api, api_port, received = start_fake_api()
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=server.url, REAGENDA_VAR_DIR=str(tmp / "var"),
               SECRET_KEY="bench-secret-key-not-for-production", EMAIL_BACKEND="sendgrid",
               SENDGRID_API_KEY="SG.bench", SENDGRID_HOST=f"http://127.0.0.1:{api_port}",
               LOG_LEVEL="WARNING", DISPATCH_BATCH="500")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(db_url)
        settings = load(env)
        ctx = runtime.build(settings)
        t_seed = time.monotonic()
        t0 = datetime.now(UTC) + timedelta(seconds=60 + args.appointments / 2000)  # after seeding finishes
        due_in_window = min(args.appointments, int(args.due_rate * args.window))
        seed(ctx, args.appointments, t0, args.window, due_in_window)
        extra = min(int(args.due_rate * args.window) - due_in_window, args.appointments - args.backlog)
        if extra > 0:
            # More due steps than appointments (200/s over 10 minutes is 120,000): the 2 h reminders of the last
            # appointments are pulled into the window too, spread evenly (the backlog phase takes the first ones).
            with ctx.session() as s:
                ids = list(s.scalars(select(Step.id).where(Step.kind == "reminder_2h").order_by(Step.id.desc())
                                     .limit(extra)))
                s.execute(update(Step), [{"id": step_id, "due_at": t0 + timedelta(seconds=args.window * k / extra)}
                                         for k, step_id in enumerate(ids)])
            due_in_window += len(ids)
        with ctx.session() as s:
            total_steps = s.scalar(select(func.count()).select_from(Step))
        # A live table is not freshly bulk-loaded: vacuum and analyze the seed now, so that autovacuum's catch-up
        # on 400,000 new rows (and planning on empty statistics) does not land inside the measured phases.
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
        print(f"seeded {args.appointments} appointments, {total_steps} steps in {time.monotonic() - t_seed:.0f} s")
        for _ in range(args.workers):
            cmd = [sys.executable, "-m", "reagenda.cli", "worker"] + ([] if args.fork else ["--simple"])
            workers.append(subprocess.Popen(cmd, env=env,
                                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        stop = threading.Event()
        mem: dict[str, float] = {}
        threading.Thread(target=redis_sampler, args=(ctx.redis, stop, mem), daemon=True).start()
        wait = (t0 - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait)
        disp = threading.Thread(target=run_dispatcher, args=(ctx, stop, args.interval), daemon=True)
        disp.start()
        window_end = t0 + timedelta(seconds=args.window)
        while True:
            time.sleep(2)
            with ctx.session() as s:
                open_ = s.scalar(select(func.count()).select_from(Step).where(
                    Step.due_at <= window_end, Step.state.in_(("pending", "queued", "running"))))
            if datetime.now(UTC) > window_end and open_ == 0:
                break
            if datetime.now(UTC) > window_end + timedelta(seconds=args.window / 2):
                print(f"giving up: {open_} window steps still open")
                break
        late = lateness(ctx, t0, window_end)

        # Phase 2: a backlog due at once (the 2 h reminders of the first B appointments, pulled forward).
        stop_disp = stop
        t_drain = datetime.now(UTC)
        with ctx.session() as s:
            ids = list(s.scalars(select(Step.id).where(Step.kind == "reminder_2h", Step.state == "pending")
                                 .order_by(Step.id).limit(args.backlog)))
            s.execute(update(Step).where(Step.id.in_(ids)).values(due_at=t_drain))
        groups = {"workers": [w.pid for w in workers], "fake email API": [api.pid],
                  "redis": [server.pid] if server.pid else [],
                  "dispatcher + bench": [os.getpid()]}
        cpu0 = cpu_seconds(groups)
        m0 = time.monotonic()
        while True:
            time.sleep(0.5)
            with ctx.session() as s:  # by (state, due_at): an IN list of the backlog's ids costs more than a step
                open_ = s.scalar(select(func.count()).select_from(Step).where(
                    Step.state.in_(("pending", "queued", "running")), Step.due_at <= t_drain))
            if open_ == 0 or time.monotonic() - m0 > 1800:
                break
        drain_s = time.monotonic() - m0
        cpu1 = cpu_seconds(groups)
        stop_disp.set()
        disp.join(10)
        with ctx.session() as s:
            done = s.scalar(select(func.count()).select_from(Step).where(Step.id.in_(ids), Step.state == "done"))
            failed = s.scalar(select(func.count()).select_from(Step).where(Step.state == "failed"))
            db_size = s.scalar(text("SELECT pg_database_size(current_database())"))
            dup = s.scalar(select(func.count()).select_from(Message)) - s.scalar(
                select(func.count(func.distinct(Message.idempotency_key))))
        redis_peak_mb = (mem.get("peak", 0) - mem.get("base", 0)) / 2**20
        rate = due_in_window / args.window
        with ctx.session() as s:
            due_times = [(due - t0).total_seconds() for due in s.scalars(
                select(Step.due_at).where(Step.due_at >= t0, Step.due_at <= window_end))]
        ref_late, ref_end = poll_reference(due_times)
        result = {
            "appointments": args.appointments, "steps": total_steps, "workers": args.workers,
            "worker_kind": "fork" if args.fork else "simple",
            "window_s": args.window, "due_rate_per_s": round(rate, 1), "window_steps_sent": len(late),
            "p50_lateness_s": round(pct(late, 50), 3), "p99_lateness_s": round(pct(late, 99), 3),
            "max_lateness_s": round(max(late, default=0.0), 3),
            "window_steps_per_s": round(len(late) / args.window, 1),
            "drain_steps": done, "drain_s": round(drain_s, 1), "drain_steps_per_s": round(done / drain_s, 1),
            "redis_peak_mb": round(redis_peak_mb, 2), "db_size_mb": round(db_size / 2**20, 1),
            "failed_steps": failed, "duplicate_messages": dup, "emails_received": received.value,
            "poll60_p50_lateness_s": round(pct(ref_late, 50), 1), "poll60_p99_lateness_s": round(pct(ref_late, 99), 1),
            "poll60_max_lateness_s": round(max(ref_late, default=0.0), 1),
            "poll60_steps_per_s": round(len(ref_late) / ref_end, 2) if ref_end else 0.0,
        }
        print(f"window: {len(late)} steps due at {rate:.0f}/s; lateness p50 {result['p50_lateness_s']} s, "
              f"p99 {result['p99_lateness_s']} s, max {result['max_lateness_s']} s")
        print(f"drain: {done} steps in {drain_s:.1f} s = {result['drain_steps_per_s']} steps/s "
              f"({args.workers} workers)")
        if done:
            per_step = {k: (cpu1[k] - cpu0[k]) * 1000 / done for k in cpu1}
            result["drain_cpu_ms_per_step"] = {k: round(v, 3) for k, v in per_step.items()}
            print("drain CPU per step: " + ", ".join(f"{k} {v:.2f} ms" for k, v in per_step.items())
                  + f" (total {sum(per_step.values()):.2f} ms on {psutil.cpu_count()} cores)")
        print(f"redis peak {redis_peak_mb:.2f} MB above baseline; database {db_size / 2**20:.0f} MB; "
              f"failed {failed}; duplicate messages {dup}")
        print(f"reference 60 s poll x 100/tick on the same due times: p50 {result['poll60_p50_lateness_s']} s, "
              f"p99 {result['poll60_p99_lateness_s']} s, max {result['poll60_max_lateness_s']} s, "
              f"{result['poll60_steps_per_s']} steps/s")
        print(json.dumps(result))
        ctx.close()
        return 0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
        api.terminate()
        server.stop()
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    random.seed(1)
    sys.exit(main())
