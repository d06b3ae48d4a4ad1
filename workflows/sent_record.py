"""Recording "sent" on PostgreSQL without waiting for the commit: the write goes out, the next message goes on.

After the provider accepts a message, its row must say ``sent`` before anything could make the step run again;
that one UPDATE per message is the only write on the hot path. Waiting for its answer (the commit's WAL flush
included) was a third of a worker's time in the drain benchmark. Here the UPDATE is written to the socket at once,
as its own autocommitted statement (libpq's ``PQsendQueryParams`` carries its own Sync), and its answer is read
just before the next one is written, or at the end of the batch: the commit overlaps the next message's delivery
(its request built and the provider's answer awaited).

The duplicate bound is unchanged. Once the statement is in the kernel's socket buffer the server receives,
executes and commits it even if this process is killed the next instant (the server only notices the dead client
when it writes the answer). A worker killed mid-batch therefore leaves at most the one message in flight at the
provider unrecorded, as before. A statement that fails (the database restarted, the connection broke) is handed
back, and the caller records it the slow way, retrying (``executor._record_sent``). A break is only seen when the
next answer is read; until then that message and the one being delivered are both unconfirmed, so a worker killed
in the same moment as the database connection breaks (a double fault) could re-send two.
"""
from __future__ import annotations

import logging
import select
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from psycopg import pq

log = logging.getLogger(__name__)

# Naive UTC text, as store.types.UTCDateTime stores it; the server infers the parameter types from the columns.
SQL = b"UPDATE messages SET status = 'sent', provider_id = $1, sent_at = $2, error = '' WHERE id = $3"
# How long an answer may take before the connection is given up as broken (a commit takes well under 1 ms).
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Delivered:
    """A message the provider accepted, whose "sent" record is written or still to be written."""

    step_id: int
    message_id: int
    provider_id: str
    sent_at: datetime


class SentRecorder:
    """Writes each delivered message's "sent" record on one psycopg connection (autocommit), keeping at most one
    answer outstanding. ``recorded`` lists what the database confirmed; ``unrecorded`` what the caller still has to
    record (a write or its answer failed). After ``close`` the connection is idle again, or ``broken`` is set
    and the caller must discard it."""

    def __init__(self, raw: psycopg.Connection) -> None:
        self._pg = raw.pgconn
        self._waiting: Delivered | None = None
        self.recorded: list[Delivered] = []
        self.unrecorded: list[Delivered] = []
        self.broken = False

    def record(self, item: Delivered) -> None:
        self._collect()
        if self.broken:
            self.unrecorded.append(item)
            return
        sent_at = item.sent_at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        try:
            self._pg.send_query_params(SQL, [item.provider_id.encode(), sent_at.encode(),
                                             str(item.message_id).encode()])
            while self._pg.flush() == 1:  # nonblocking connection: wait until the kernel has taken it all
                self._wait(read=False)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self._give_up(item, exc)
            return
        self._waiting = item

    def close(self) -> None:
        """Read the last answer; the connection is idle afterwards (unless ``broken``)."""
        self._collect()

    def _collect(self) -> None:
        item, self._waiting = self._waiting, None
        if item is None:
            return
        try:
            self._pg.consume_input()
            while self._pg.is_busy():
                self._wait(read=True)
                self._pg.consume_input()
            ok = False
            while (result := self._pg.get_result()) is not None:
                ok = ok or result.status == pq.ExecStatus.COMMAND_OK
                if result.status != pq.ExecStatus.COMMAND_OK:
                    log.warning("recording message %s as sent failed: %s", item.message_id,
                                (result.error_message or b"").decode(errors="replace").strip())
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self._give_up(item, exc)
            return
        if ok:
            self.recorded.append(item)
            return
        self.unrecorded.append(item)
        if self._pg.status != pq.ConnStatus.OK:  # the server closed it (restart, terminated backend)
            self.broken = True

    def _wait(self, *, read: bool) -> None:
        fd = self._pg.socket
        ready = select.select([fd] if read else [], [] if read else [fd], [], ANSWER_TIMEOUT_S)
        if not any(ready):
            raise TimeoutError(f"no answer from the database in {ANSWER_TIMEOUT_S:.0f} s")

    def _give_up(self, item: Delivered, exc: BaseException) -> None:
        log.warning("recording message %s as sent failed on the batch connection (%s: %s); it will be retried",
                    item.message_id, type(exc).__name__, exc)
        self.broken = True
        self.unrecorded.append(item)
