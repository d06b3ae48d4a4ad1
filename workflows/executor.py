"""Running one step in a worker: claim, re-decide, record, send, finish; retry with backoff on failure.

The claim is a guarded UPDATE (``queued`` → ``running``), so a job delivered twice by RQ (re-dispatched after a
Redis flush, say) runs once. Every failure ends in the database: retried with exponential backoff and jitter up to
``max_attempts``, then ``failed`` with the reason for the owner to see. Nothing here blocks other steps.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from channels.base import (AddressRejected, ChannelNotConfigured, OutgoingMessage, PermanentChannelError,
                           TransientChannelError)
from reagenda.runtime import Context
from store.models import Appointment, Message, Step
from store.db import one_of
from workflows import outbound
from workflows.decisions import Defer, Done, Send, Skip
from workflows.kinds import handler_for
from workflows.sent_record import Delivered, SentRecorder

log = logging.getLogger(__name__)


# A provider outage (5xx, 429, timeouts) is retried at least every TRANSIENT_MAX_DELAY, without counting against
# max_attempts, until TRANSIENT_GIVE_UP after the first delivery attempt: an hour-long outage delays, never loses.
TRANSIENT_MAX_DELAY = timedelta(minutes=10)
TRANSIENT_GIVE_UP = timedelta(days=2)
# How long a worker keeps trying to record "sent" after the provider accepted a message (a database restart).
RECORD_SENT_RETRY_S = 60.0


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour, with up to 20% jitter so retries do not arrive in lockstep."""
    base = min(3600.0, 30.0 * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=base * (1 + random.random() * 0.2))


def execute(ctx: Context, step_id: int) -> str:
    """Run one step (see ``execute_many``)."""
    return execute_many(ctx, [step_id])[step_id]


def execute_many(ctx: Context, step_ids: list[int]) -> dict[int, str]:
    """Run a batch of steps (one RQ job carries several, see ``dispatcher.enqueue``). Returns each step's outcome.

    One guarded claim for all of them; then every step is decided and its message recorded in one transaction
    (the steps, their appointments, clients and owners loaded together), committed before any provider is called;
    then each message is delivered and recorded as sent on its own, with its own failure handling. If deciding
    any step raises, that transaction is rolled back and the batch runs one step at a time, so one bad step never
    holds up or undoes another."""
    now = ctx.clock.now()
    with ctx.session() as session:
        claimed = set(session.scalars(
            update(Step).where(one_of(Step.id, step_ids, ctx.engine), Step.state == "queued")
            .values(state="running", claimed_at=now, attempts=Step.attempts + 1).returning(Step.id)
            .execution_options(synchronize_session=False)))
    outcomes: dict[int, str] = {}
    for step_id in step_ids:
        if step_id not in claimed:
            log.info("step %s is not queued any more (done, cancelled or claimed elsewhere); nothing to do", step_id)
            outcomes[step_id] = "not-claimed"
    mine = [step_id for step_id in step_ids if step_id in claimed]
    if len(mine) == 1:
        outcomes[mine[0]] = _execute_claimed(ctx, mine[0])
        return outcomes
    decided: dict[int, str | _Outgoing] = {}
    try:
        with ctx.session() as session:
            loaded, known = _preload(session, mine, now)  # held: the identity map only keeps weak references
            recorded = {step_id: _decide(ctx, session, step_id, now, known) for step_id in mine}
            session.flush()  # the batch's messages in one INSERT; their ids go into Reply-To and Message-ID
            decided = {step_id: r if isinstance(r, str) else _outgoing(ctx, session, r)
                       for step_id, r in recorded.items()}
            del loaded
    except Exception as exc:  # noqa: BLE001 - nothing was committed: run the batch the slow, isolated way
        log.warning("deciding a batch of %d steps failed (%s: %s); running them one at a time", len(mine),
                    type(exc).__name__, exc)
        for step_id in mine:
            outcomes[step_id] = _execute_claimed(ctx, step_id)
        return outcomes
    # One connection records every "sent" of the batch, each right after its delivery (the message row only: one
    # statement; on PostgreSQL its answer is read while the next message goes out, see workflows/sent_record), and
    # at the end marks the sent steps done together; it holds no transaction while a provider is called. A step
    # left running by a crash before that finds its message sent when the reconciler re-runs it.
    with ctx.engine.connect() as conn:
        sent = _BatchSent(ctx, conn)
        try:
            for step_id in mine:
                result = decided[step_id]
                if isinstance(result, str):
                    outcomes[step_id] = result
                    continue
                outcomes[step_id] = _execute_claimed(ctx, step_id, result, sent)
        finally:
            sent.close()
    return outcomes


def _preload(session: Session, step_ids: list[int], now: datetime) -> tuple[list[object], outbound.Known]:
    """Load a batch's steps and their appointments (with clients and owners, joined) into the session, so the
    handlers' ``session.get`` calls find them there instead of asking the database one by one, and what
    ``outbound.prepare`` would otherwise ask per step (``outbound.Known``). The caller keeps the returned list
    alive for as long as the batch runs."""
    bind = session.get_bind()
    steps = list(session.scalars(select(Step).where(one_of(Step.id, step_ids, bind))))
    loaded: list[object] = list(steps)
    appointment_ids = {s.subject_id for s in steps if s.subject_type == "appointment"}
    client_ids = {s.subject_id for s in steps if s.subject_type == "client"}
    if appointment_ids:
        appointments = list(session.scalars(select(Appointment).where(one_of(Appointment.id, appointment_ids, bind)))
                            .unique())
        loaded += appointments
        client_ids |= {a.client_id for a in appointments}
    return loaded, outbound.Known(session, steps, client_ids, now)


@dataclass(frozen=True)
class _Outgoing:
    """A decided step whose message is recorded (committed) and waits for delivery."""

    message_id: int
    message: OutgoingMessage
    medium: str


def _execute_claimed(ctx: Context, step_id: int, outgoing: _Outgoing | None = None,
                     sent: _BatchSent | None = None) -> str:
    """Run one claimed step (or deliver its already recorded message), turning every failure into a retry or a
    visible failure."""
    try:
        if outgoing is None:
            return _run(ctx, step_id)
        return _deliver(ctx, step_id, outgoing, sent)
    except AddressRejected as exc:
        # The provider refused this client's address: mark the address (nothing more goes to it), keep the
        # channel for everyone else, and leave the failed step for the owner to see.
        _mark_address(ctx, step_id, str(exc))
        return _finish(ctx, step_id, "failed", f"address refused: {exc}", message_status="failed")
    except (PermanentChannelError, ChannelNotConfigured) as exc:
        return _finish(ctx, step_id, "failed", f"{type(exc).__name__}: {exc}", message_status="failed")
    except TransientChannelError as exc:
        # The provider is down or throttling: retry for as long as an outage can last; the handler re-decides on
        # each attempt, so a message whose moment has passed is skipped (with the reason), never sent late.
        log.warning("step %s: provider unavailable, will retry: %s", step_id, exc)
        return _retry_or_fail(ctx, step_id, f"{type(exc).__name__}: {exc}", transient=True)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never lost
        log.warning("step %s failed: %s", step_id, exc, exc_info=not _is_channel_error(exc))
        return _retry_or_fail(ctx, step_id, f"{type(exc).__name__}: {exc}")


def _run(ctx: Context, step_id: int) -> str:
    now = ctx.clock.now()
    with ctx.session() as session:
        loaded, known = _preload(session, [step_id], now)  # the batch's loading, for one step
        result = _decide(ctx, session, step_id, now, known)
        del loaded
        if not isinstance(result, str):
            session.flush()
            result = _outgoing(ctx, session, result)
    # The Message row is committed (leaving the block above) before the provider is called (see outbound).
    return result if isinstance(result, str) else _deliver(ctx, step_id, result)


def _deliver(ctx: Context, step_id: int, outgoing: _Outgoing, sent: _BatchSent | None = None) -> str:
    """Call the provider (outside any transaction: a slow provider holds no transaction open), then record the
    message as sent at once. In a batch (``sent``) the step is marked done with the others at the end; on its
    own, together with the message."""
    provider_id = outbound.deliver(ctx, outgoing.message, outgoing.medium)
    if sent is not None:
        sent.add(step_id, outgoing.message_id, provider_id)
    else:
        _record_sent(ctx, step_id, outgoing.message_id, provider_id)
    return "sent"


def _decide(ctx: Context, session: Session, step_id: int, now: datetime,
            known: outbound.Known) -> str | Message:
    """Re-decide a claimed step and record the outcome in ``session``: an outcome word, or the message to deliver
    once the session is flushed (``_outgoing``) and committed."""
    step = session.get(Step, step_id)
    if step is None:
        log.info("step %s was deleted; nothing to do", step_id)
        return "gone"
    if step.attempts > 1:  # a re-run: a message already accepted for this step ends it, whatever has changed since
        earlier = known.message(session, step.idempotency_key)
        if earlier is not None and earlier.status == "sent":
            step.state, step.finished_at = "done", now
            step.outcome = f"sent message {earlier.id} (recorded on an earlier attempt)"
            return "done"
    handler = handler_for(step.kind)
    if handler is None:
        step.state, step.finished_at, step.outcome = "failed", now, f"no handler for step kind {step.kind!r}"
        log.error("step %s has unknown kind %r", step_id, step.kind)
        return "failed"
    decision = handler(session, step, now)
    if isinstance(decision, Send):
        prepared = outbound.prepare(ctx, session, step, decision, now, known)
        decision = prepared if isinstance(prepared, (Skip, Defer)) else decision
    if isinstance(decision, Defer):
        # Not a failure: hand the attempt back and run again later.
        step.state, step.claimed_at, step.due_at = "pending", None, decision.until
        step.attempts = max(0, step.attempts - 1)
        step.payload = {**(step.payload or {}), "deferred": True}
        step.outcome = f"deferred to {decision.until:%Y-%m-%d %H:%M}Z: {decision.reason}"
        log.info("step %s (%s) deferred to %s: %s", step_id, step.kind, decision.until, decision.reason)
        return "deferred"
    if isinstance(decision, Skip):
        step.state, step.finished_at, step.outcome = "skipped", now, decision.reason
        log.info("step %s (%s) skipped: %s", step_id, step.kind, decision.reason)
        return "skipped"
    if isinstance(decision, Done):
        step.state, step.finished_at, step.outcome = "done", now, decision.note
        return "done"
    msg = prepared
    if msg.status == "sent":
        step.state, step.finished_at, step.outcome = "done", now, "already sent (idempotency key matched)"
        return "done"
    msg.status = "sending"
    return msg


def _outgoing(ctx: Context, session: Session, msg: Message) -> _Outgoing:
    """What the channel needs for a recorded (flushed) message."""
    return _Outgoing(msg.id, outbound.outgoing(ctx, session, msg), msg.channel)


def _mark_address(ctx: Context, step_id: int, reason: str) -> None:
    from channels.compose import mark_address_rejected

    with ctx.session() as session:
        step = session.get(Step, step_id)
        msg = session.scalar(select(Message).where(Message.idempotency_key == step.idempotency_key)) if step else None
        if msg is not None and mark_address_rejected(session, msg, reason) is not None:
            log.warning("step %s: the provider refused the client's address; it is marked and skipped from now on",
                        step_id)


def _record_sent(ctx: Context, step_id: int, message_id: int, provider_id: str) -> None:
    """The provider has accepted the message: record that (message sent, step done), retrying through a database
    restart for up to ``RECORD_SENT_RETRY_S``, because giving up here would make the next attempt send the message
    again."""
    deadline = time.monotonic() + RECORD_SENT_RETRY_S
    pause = 0.2
    while True:
        try:
            with ctx.session() as session:
                sent_at = ctx.clock.now()
                session.execute(update(Message).where(Message.id == message_id)
                                .values(status="sent", provider_id=provider_id, sent_at=sent_at, error="")
                                .execution_options(synchronize_session=False))
                session.execute(update(Step).where(Step.id == step_id)
                                .values(state="done", finished_at=sent_at, outcome=f"sent message {message_id}")
                                .execution_options(synchronize_session=False))
            return
        except DBAPIError as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("step %s: message %s was sent but recording it failed (%s); retrying in %.1fs",
                        step_id, message_id, type(exc.orig).__name__, pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


class _BatchSent:
    """Where a batch records its delivered messages: each message row as sent right after its delivery (one
    statement, committed on its own, which is all the idempotency key needs: a re-run finds the message sent and
    sends nothing), and at the end the sent steps done, together. On PostgreSQL the per-message statement goes
    straight to libpq without waiting for its answer (``SentRecorder``); elsewhere, or on a connection that is not
    in autocommit, through SQLAlchemy. A record that fails is made again the slow way, with retries
    (``_record_sent``)."""

    def __init__(self, ctx: Context, conn: Connection) -> None:
        self._ctx, self._conn = ctx, conn
        self._done: list[tuple[int, int]] = []
        self._recorder: SentRecorder | None = None
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")  # one statement per message, committed alone
            raw = conn.connection.driver_connection
            if isinstance(raw, psycopg.Connection) and raw.autocommit:
                self._recorder = SentRecorder(raw)

    def add(self, step_id: int, message_id: int, provider_id: str) -> None:
        sent_at = self._ctx.clock.now()
        if self._recorder is not None:
            self._recorder.record(Delivered(step_id, message_id, provider_id, sent_at))
            self._settle()
        elif self._record(step_id, message_id, provider_id, sent_at):
            self._done.append((step_id, message_id))
        else:
            _record_sent(self._ctx, step_id, message_id, provider_id)

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._settle()
        _finish_sent(self._ctx, self._conn, self._done)

    def _settle(self) -> None:
        """Take what the database confirmed; make what it did not again at once, the slow way (so a delivered
        message is never left unrecorded beyond the one whose answer is awaited). A broken connection is discarded
        and the rest of the batch records in-line."""
        recorder = self._recorder
        assert recorder is not None
        self._done += [(d.step_id, d.message_id) for d in recorder.recorded]
        recorder.recorded.clear()
        if recorder.broken:
            self._conn.invalidate()  # an answer may still be on its way: never hand this socket back
            self._recorder = None
        for d in recorder.unrecorded:
            try:
                _record_sent(self._ctx, d.step_id, d.message_id, d.provider_id)
            except DBAPIError as exc:
                # The step stays running; the reconciler re-runs it. The message is the one this can re-send.
                log.error("step %s: message %s was sent but could not be recorded (%s)", d.step_id,
                          d.message_id, type(exc.orig).__name__)
        recorder.unrecorded.clear()

    def _record(self, step_id: int, message_id: int, provider_id: str, sent_at: datetime) -> bool:
        try:
            with self._conn.begin():
                self._conn.execute(_MESSAGE_SENT, dict(provider_id=provider_id, sent_at=sent_at,
                                                       message_id=message_id))
            return True
        except DBAPIError as exc:
            log.warning("step %s: recording message %s as sent failed on the batch connection (%s); retrying",
                        step_id, message_id, type(exc.orig).__name__)
            if self._conn.dialect.name == "postgresql":
                self._conn.invalidate()  # the next use (the batch's end) reconnects instead of reusing a broken socket
            return False


_MESSAGES = Message.__table__.c
_MESSAGE_SENT = (update(Message.__table__).where(_MESSAGES.id == bindparam("message_id"))
                 .values(status="sent", provider_id=bindparam("provider_id"), sent_at=bindparam("sent_at"), error=""))


def _finish_sent(ctx: Context, conn: Connection, sent: list[tuple[int, int]]) -> None:
    """Mark a batch's sent steps done, in one transaction. If that fails the steps stay ``running``: the
    reconciler re-runs them later, and each finds its message sent and finishes without sending."""
    if not sent:
        return
    finished_at = ctx.clock.now()
    rows = [dict(step_id=step_id, finished_at=finished_at, outcome=f"sent message {message_id}")
            for step_id, message_id in sent]
    try:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="READ COMMITTED")  # one transaction, not one per row
        with conn.begin():
            conn.execute(_STEP_DONE, rows)
    except DBAPIError as exc:
        log.warning("marking %d sent step(s) done failed (%s); the reconciler will finish them",
                    len(sent), type(exc.orig).__name__)


_STEPS = Step.__table__.c
_STEP_DONE = (update(Step.__table__).where(_STEPS.id == bindparam("step_id"), _STEPS.state == "running")
              .values(state="done", finished_at=bindparam("finished_at"), outcome=bindparam("outcome")))


def _retry_or_fail(ctx: Context, step_id: int, error: str, *, transient: bool = False) -> str:
    now = ctx.clock.now()
    with ctx.session() as session:
        step = session.get(Step, step_id)
        if step is None:
            return "gone"
        first_try = session.scalar(select(Message.created_at).where(Message.idempotency_key == step.idempotency_key))
        outage = transient and now - (first_try or now) < TRANSIENT_GIVE_UP
        if step.attempts >= step.max_attempts and not outage:
            step.state, step.finished_at = "failed", now
            step.outcome = f"failed after {step.attempts} attempts: {error}"
            _mark_message(session, step, "failed", error)
            log.error("step %s (%s) failed for good after %d attempts: %s", step_id, step.kind, step.attempts, error)
            return "failed"
        step.state, step.claimed_at = "pending", None
        delay = backoff(step.attempts)
        step.due_at = now + (min(delay, TRANSIENT_MAX_DELAY) if transient else delay)
        step.outcome = f"attempt {step.attempts} failed, retrying at {step.due_at:%Y-%m-%d %H:%M:%S}Z: {error}"
        _mark_message(session, step, "pending", error)
        return "retry"


def _finish(ctx: Context, step_id: int, state: str, outcome: str, *, message_status: str) -> str:
    with ctx.session() as session:
        step = session.get(Step, step_id)
        if step is None:
            return "gone"
        step.state, step.finished_at, step.outcome = state, ctx.clock.now(), outcome
        _mark_message(session, step, message_status, outcome)
    log.error("step %s %s: %s", step_id, state, outcome)
    return state


def _mark_message(session, step: Step, status: str, error: str) -> None:  # type: ignore[no-untyped-def]
    msg = session.query(Message).filter_by(idempotency_key=step.idempotency_key).one_or_none()
    if msg is not None and msg.status != "sent":
        msg.status, msg.error = status, error[:2000]


def _is_channel_error(exc: BaseException) -> bool:
    from channels.base import ChannelError

    return isinstance(exc, ChannelError)
