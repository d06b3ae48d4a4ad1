"""Retries for provider HTTP calls: exponential backoff with full jitter, Retry-After honoured, and a per-mailbox
concurrency limit.

Why here and not in each connector: Google and Graph fail the same ways (429, 403 rate limits, 5xx, timeouts) and
the rules must be the same for both: a short, jittered wait so many workers do not retry in lockstep, the server's
own Retry-After when it gives one, and a hard cap so one throttled calendar never parks a worker for minutes (the
error goes up as ``RateLimited`` and the sync engine moves on to the other calendars).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from connectors.base import ProviderUnavailable, RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")

# Microsoft Graph allows 4 concurrent requests per app per mailbox (Outlook service limits); a fifth gets 429.
GRAPH_MAILBOX_CONCURRENCY = 4


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0,
                  rng: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap_s, base_s * (2 ** attempt))


class Retrier:
    """Runs a call, retrying ``RateLimited`` and ``ProviderUnavailable`` a few times.

    ``sleep`` and ``rng`` are injected so tests run without waiting. A Retry-After longer than ``max_wait_s`` is not
    slept through: the error is raised at once with its ``retry_after_s`` so the caller can schedule a later sync.
    """

    def __init__(self, *, attempts: int = 4, base_s: float = 0.5, cap_s: float = 30.0, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random) -> None:
        self.attempts = attempts
        self.base_s = base_s
        self.cap_s = cap_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.rng = rng

    def call(self, fn: Callable[[], T], what: str) -> T:
        for attempt in range(self.attempts):
            try:
                return fn()
            except (RateLimited, ProviderUnavailable) as exc:
                retry_after = getattr(exc, "retry_after_s", None)
                last = attempt + 1 >= self.attempts
                if last or (retry_after is not None and retry_after > self.max_wait_s):
                    raise
                delay = retry_after if retry_after is not None else backoff_delay(
                    attempt, base_s=self.base_s, cap_s=self.cap_s, rng=self.rng)
                log.info("%s: %s; retry %d/%d in %.2fs", what, type(exc).__name__, attempt + 1,
                         self.attempts - 1, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


class MailboxLimiter:
    """At most ``limit`` requests in flight per mailbox in this process.

    One limiter is shared by every connector instance (``shared_limiter``), so two sync jobs for the same mailbox in
    one worker still add up to four. Across processes the 429 + Retry-After path is the backstop.
    """

    def __init__(self, limit: int = GRAPH_MAILBOX_CONCURRENCY) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, mailbox: str) -> Iterator[None]:
        with self._lock:
            sem = self._semaphores.setdefault(mailbox, threading.BoundedSemaphore(self.limit))
        with sem:
            yield


shared_limiter = MailboxLimiter()
