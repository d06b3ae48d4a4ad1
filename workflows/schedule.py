"""Periodic work, declared as data in one place (as redash's ``tasks/schedule.py`` does).

The dispatcher process calls ``tick`` on every pass. Each entry runs at most once per interval across all
dispatchers: the interval is cut into buckets on the injected clock, and a Redis ``SET NX`` on the bucket's key
decides which dispatcher runs it. Cheap, database-only work runs inline in the dispatcher; anything that talks to
a provider is enqueued to RQ under a deterministic job id, so a slow provider never delays due steps. Losing
Redis only means an entry may run once more than needed, which every entry here tolerates.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import redis

from reagenda.runtime import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str  # [a-z-] only: it names the Redis key and the RQ job
    every: timedelta
    target: str  # dotted path of the function
    inline: bool  # True: call target(ctx) in the dispatcher; False: enqueue target() on RQ


SCHEDULE: tuple[Periodic, ...] = (
    # Queue one sync job per watched calendar whose next sync has come (push makes most of them come early).
    Periodic("calendar-sync", timedelta(seconds=30), "workflows.sync.enqueue_due", inline=True),
    # Renew Google channels / Graph subscriptions before they expire, open missing ones.
    Periodic("push-renewal", timedelta(hours=1), "workflows.push_renewal.renew_due_job", inline=False),
)


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _claim(ctx: Context, entry: Periodic) -> bool:
    seconds = max(1, int(entry.every.total_seconds()))
    bucket = int(ctx.clock.now().timestamp()) // seconds
    key = f"reagenda:periodic:{entry.name}:{bucket}"
    return bool(ctx.redis.set(key, "1", nx=True, ex=seconds * 2))


def tick(ctx: Context, schedule: tuple[Periodic, ...] = SCHEDULE) -> list[str]:
    """Run or enqueue every entry whose interval bucket has not run yet. Returns the names that ran."""
    ran = []
    for entry in schedule:
        try:
            if not _claim(ctx, entry):
                continue
            if entry.inline:
                _resolve(entry.target)(ctx)
            else:
                ctx.queue().enqueue(entry.target, job_id=f"periodic-{entry.name}", result_ttl=600,
                                    failure_ttl=86400, job_timeout=900)
            ran.append(entry.name)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("periodic %s not run this time (Redis: %s); next pass retries", entry.name, exc)
        except Exception:  # noqa: BLE001 - one failing entry must not stop the dispatcher or the others
            log.exception("periodic %s failed", entry.name)
    return ran
