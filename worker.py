"""The RQ worker entry point (``reagenda worker``, the Procfile's ``worker``).

It builds the runtime context once (database engine, Redis, clock) and installs it for the jobs in
``workflows.jobs``, then works the Reagenda queue until stopped.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import time

import redis
from rq import SimpleWorker, Worker

from reagenda import runtime
from reagenda.settings import Settings, load

log = logging.getLogger("reagenda.worker")
_RECONNECT_S = 1.0


def preload() -> None:
    """Import everything a job can need before the first fork.

    RQ's default worker forks a work horse per job; whatever the parent has not imported, every horse imports
    again (the Google client, the SendGrid library, the templates), which measured ~0.2 s per job here. Imported
    once in the parent, the horses share it copy-on-write.
    """
    import channels.compose  # noqa: F401
    import workflows.jobs  # noqa: F401
    import workflows.push_renewal  # noqa: F401
    import workflows.sync  # noqa: F401
    from channels import registry as channel_registry
    from connectors import registry as connector_registry
    from workflows import kinds

    kinds._load()
    channel_registry._load()
    connector_registry._load()
    # Compiled templates and Babel's locale data are cached on first use: warm both for every horse to share.
    from datetime import datetime, timezone

    from channels.render import SUPPORTED_LOCALES, _env, format_when

    for name in _env.list_templates(filter_func=lambda n: n.endswith(".txt")):
        _env.get_template(name)
    for locale in SUPPORTED_LOCALES:
        format_when(datetime.now(timezone.utc), "Europe/Madrid", locale)
    for optional in ("channels.sendgrid", "channels.smtp", "channels.twilio_sms"):
        try:
            importlib.import_module(optional)
        except ImportError:  # an optional channel whose library is not installed
            pass


def run(settings: Settings, *, burst: bool = False, simple: bool = False) -> None:
    """Work the queue. ``simple`` runs jobs in this process (faster, no fork) instead of a forked work horse."""
    ctx = runtime.build(settings)
    runtime.install(ctx)
    preload()
    cls = SimpleWorker if simple else Worker
    try:
        while True:
            try:
                # Inside the try: building a worker talks to Redis too (CLIENT SETNAME), and after a Redis restart
                # the first command on a pooled connection can meet the reset.
                worker = cls([ctx.queue()], connection=ctx.redis)
                log.info("worker %s listening on queue %r", worker.name, settings.queue_name)
                worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=False)
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                # Redis went away while a job was being finished (RQ only retries while idle) or while a worker was
                # being built. The step itself is in the database; the reconciler re-dispatches it if needed.
                # Start a fresh worker, don't exit.
                log.warning("lost Redis (%s); reconnecting in %.0fs", exc, _RECONNECT_S)
                time.sleep(_RECONNECT_S)
    finally:
        runtime.install(None)
        ctx.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="worker.py", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--simple", action="store_true", help="run jobs in-process instead of forking")
    args = parser.parse_args(argv)
    run(load(), burst=args.burst, simple=args.simple)


if __name__ == "__main__":
    main()
