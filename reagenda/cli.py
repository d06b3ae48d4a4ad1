"""The ``reagenda`` command.

    reagenda run          web + worker + dispatcher together (embedded Redis when REDIS_URL is unset)
    reagenda web          the web process (gunicorn), on $PORT
    reagenda worker       one RQ worker
    reagenda dispatcher   moves due steps from the database onto RQ
    reagenda db upgrade   apply database migrations
    reagenda status       queue depth, due-but-not-dispatched steps, oldest lag
    reagenda demo         a sample calendar (embedded Radicale), a demo owner, the flows in the outbox; then run
    reagenda sync         sync the calendars that are due (--all, --calendar ID, --every SECONDS, --json)
    reagenda reply explain FILE.eml [--json]   how a raw client email would be matched, stripped and classified
    reagenda simulate --days 14   dry run: what each client would receive and when (store unchanged)
    reagenda ghost start CLIENT_EMAIL [--owner EMAIL]   start the ghosting ultimatum for a silent client

Errors an operator can meet (bad settings, unreachable database or Redis, port in use) are printed as one line
that says what is wrong and what to do, with passwords masked, and exit with status 2.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Sequence

from reagenda.settings import Settings, SettingsError, load, mask_url

log = logging.getLogger("reagenda")


class CommandError(Exception):
    """A one-line, actionable error for the operator."""


def setup_logging(level: str, name: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------------- db upgrade


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action != "upgrade":
        raise CommandError(f"unknown db action {args.action!r}; try `reagenda db upgrade`")
    upgrade_database(settings)
    print(f"database is up to date ({mask_url(settings.database_url)})")
    return 0


def upgrade_database(settings: Settings) -> None:
    from store.db import make_engine, ping
    from store.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        ping(engine)
    except Exception as exc:  # noqa: BLE001
        raise CommandError(f"database unreachable at {mask_url(settings.database_url)}: "
                           f"{_first_line(exc)}") from None
    finally:
        engine.dispose()
    upgrade(settings.database_url)


# ---------------------------------------------------------------------------------------------------- web


def check_port_free(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"port {port} is already in use; stop what is using it or set PORT to a free "
                               f"port (for example PORT={port + 1})") from None
        raise CommandError(f"cannot listen on port {port}: {exc.strerror}") from None
    finally:
        sock.close()


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    port = args.port or settings.port
    check_port_free(port)
    _build_or_fail(settings).close()  # one clear line now beats a page of 500s later
    from web import create_app

    app = create_app(settings)
    if args.dev:
        app.run(host="0.0.0.0", port=port, debug=False, use_reloader=False)
        return 0
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"0.0.0.0:{port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 8)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)
            self.cfg.set("control_socket", str(settings.var_dir / "gunicorn.ctl"))

        def load(self):  # type: ignore[no-untyped-def]
            return app

    _Gunicorn().run()
    return 0


# ---------------------------------------------------------------------------------------------------- worker


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import worker

    _build_or_fail(settings).close()  # fail fast with a one-line error if Redis or the database is down
    worker.run(settings, burst=args.burst, simple=args.simple)
    return 0


# ---------------------------------------------------------------------------------------------------- dispatcher


def cmd_dispatcher(args: argparse.Namespace, settings: Settings) -> int:
    from workflows import dispatcher

    ctx = _build_or_fail(settings)
    if args.once:
        n = dispatcher.dispatch_due(ctx)
        r = dispatcher.reconcile(ctx)
        print(f"dispatched {n} step(s), recovered {r}")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    dispatcher.run_forever(ctx, stop)
    ctx.close()
    return 0


# ---------------------------------------------------------------------------------------------------- sync


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Sync calendars now: the due ones, every watched one (--all) or the given ids; --every N keeps going."""
    from workflows import sync

    ctx = _build_or_fail(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while True:
            if args.calendar:
                results = [sync.sync_calendar(ctx, cid, force=True) for cid in args.calendar]
            else:
                results = sync.sync_due(ctx, force=args.all)
            for r in results:
                if args.json:
                    print(json.dumps({"calendar": r.calendar_id, "status": r.status, "full": r.full,
                                      "events": [e.kind for e in r.events], "skipped": len(r.skipped),
                                      "error": r.error}), flush=True)
                else:
                    print(f"calendar {r.calendar_id}: {r}", flush=True)
            if not args.every or stop.wait(args.every):
                break
    finally:
        ctx.close()
    return 0


# ---------------------------------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.dispatcher import backlog

    ctx = _build_or_fail(settings)
    b = backlog(ctx)
    ctx.close()
    figures = {"queue_depth": b.queue_depth, "due_not_dispatched": b.due_not_dispatched,
               "oldest_lag_s": round(b.oldest_lag_s, 1), "failed_steps": b.failed_steps}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"queue depth:                 {b.queue_depth}")
        print(f"due, not yet dispatched:     {b.due_not_dispatched}")
        print(f"oldest lag:                  {b.oldest_lag_s:.1f} s")
        print(f"failed steps (owner to see): {b.failed_steps}")
    return 0


# ---------------------------------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Issue 6: a local CalDAV calendar with sample appointments, connected and synced; then everything runs."""
    from web import demo

    upgrade_database(settings)
    print(demo.prepare_demo(settings, build=_build_or_fail), flush=True)
    if args.no_run:
        demo.stop_radicale(settings.var_dir)
        return 0
    try:
        return cmd_run(args, settings)
    finally:
        demo.stop_radicale(settings.var_dir)


# ---------------------------------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Supervise web, worker and dispatcher; start and finally stop the embedded Redis when REDIS_URL is unset."""
    from reagenda.embedded_redis import EmbeddedRedis, die_with_parent

    port = args.port or settings.port
    check_port_free(port)
    upgrade_database(settings)
    env = dict(os.environ, PORT=str(port), REAGENDA_VAR_DIR=str(settings.var_dir))
    embedded: EmbeddedRedis | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if settings.redis_url is None:
            embedded = EmbeddedRedis(settings.embedded_redis_socket).start()
            env["REDIS_URL"] = embedded.url
        _build_or_fail(load(env)).close()
        # The worker runs jobs in-process (--simple): forking a work horse per job measured ~10x slower here
        # (bench/dispatch.py), and a worker that dies is covered by the reconciler (tests/faults).
        for name, extra in (("web", []), ("worker", ["--simple"]), ("dispatcher", [])):
            cmd = [sys.executable, "-m", "reagenda.cli", name, *extra]
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=die_with_parent)
            children.append((name, proc))
        print(f"Reagenda is running on http://localhost:{port} (web, worker, dispatcher"
              f"{', embedded Redis' if embedded else ''}); Ctrl-C stops everything.", flush=True)
        exit_code = 0
        while not stopping.is_set():
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"reagenda: the {name} process exited with status {proc.returncode}; stopping the rest",
                          file=sys.stderr, flush=True)
                    exit_code = 1
                    stopping.set()
                    break
            stopping.wait(0.5)
        return exit_code
    finally:
        _stop_children(children)
        if embedded is not None:
            embedded.stop()


def _stop_children(children: list[tuple[str, "subprocess.Popen[bytes]"]]) -> None:
    for _, proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------------- helpers


def _build_or_fail(settings: Settings):  # type: ignore[no-untyped-def]
    from reagenda.runtime import StartupError, build

    try:
        return build(settings)
    except StartupError as exc:
        raise CommandError(str(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reagenda", description="Reagenda: protect your time from no-shows.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="web + worker + dispatcher together")
    run.add_argument("--port", type=int)
    run.set_defaults(func=cmd_run)
    web = sub.add_parser("web", help="the web process")
    web.add_argument("--port", type=int)
    web.add_argument("--workers", type=int, default=2)
    web.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    web.set_defaults(func=cmd_web)
    wk = sub.add_parser("worker", help="one RQ worker")
    wk.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    wk.add_argument("--simple", action="store_true", help="run jobs in-process (no fork per job)")
    wk.set_defaults(func=cmd_worker)
    dp = sub.add_parser("dispatcher", help="move due steps onto the queue")
    dp.add_argument("--once", action="store_true", help="one dispatch + reconcile pass, then exit")
    dp.set_defaults(func=cmd_dispatcher)
    db = sub.add_parser("db", help="database tasks")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=cmd_db)
    sy = sub.add_parser("sync", help="sync calendars now (the due ones by default)")
    sy.add_argument("--all", action="store_true", help="every watched calendar, due or not")
    sy.add_argument("--calendar", type=int, action="append", help="this calendar id (repeatable)")
    sy.add_argument("--every", type=float, default=0, help="keep syncing the due ones every N seconds")
    sy.add_argument("--json", action="store_true", help="one JSON line per calendar")
    sy.set_defaults(func=cmd_sync)
    dm = sub.add_parser("demo", help="try it: a sample CalDAV calendar, connected and synced, then run")
    dm.add_argument("--port", type=int)
    dm.add_argument("--no-run", action="store_true", help="prepare the demo and exit")
    dm.set_defaults(func=cmd_demo)
    st = sub.add_parser("status", help="queue depth and lag")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    from replies.explain import add_parser as add_reply_parser  # issue 5: reagenda reply explain FILE.eml

    add_reply_parser(sub)
    from workflows.commands import add_parsers as add_workflow_parsers  # issue 4: simulate, ghost start

    add_workflow_parsers(sub)
    from workflows.booking_commands import add_parsers as add_booking_parsers  # issue 7: booking setup/show

    add_booking_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load()
    except SettingsError as exc:
        print(f"reagenda: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, args.command)
    try:
        return args.func(args, settings)
    except CommandError as exc:
        print(f"reagenda: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
