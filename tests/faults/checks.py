"""The end-of-run checks every fault test makes: nothing lost, each message delivered, duplicates counted."""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.faults.harness import first_lines, wait_for
from tests.faults.seed import all_final, count_final, messages_for, steps


@dataclass
class Outcome:
    steps: int
    sent: int
    duplicates: dict[str, int]
    rerun: int

    @property
    def duplicate_deliveries(self) -> int:
        return sum(self.duplicates.values())

    def line(self) -> str:
        return (f"{self.steps} steps, {self.sent} sent, {self.duplicate_deliveries} duplicate deliveries "
                f"({first_lines(self.duplicates) or 'none'}), {self.rerun} step(s) re-run")


def wait_progress(rig, ids: list[int], done: int, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    """Wait until at least ``done`` of ``ids`` are finished (the fault is injected mid-run)."""
    try:
        wait_for(lambda: count_final(rig.ctx, ids) >= done, timeout, f"{done} steps to finish", interval=0.05)
    except TimeoutError:
        pytest.fail(f"no progress: {count_final(rig.ctx, ids)}/{len(ids)} finished\n{rig.fleet.report()}")


def settle(rig, ids: list[int], timeout: float = 150) -> Outcome:  # type: ignore[no-untyped-def]
    """Wait for every step to finish, then check each was done once and each message delivered."""
    try:
        wait_for(lambda: all_final(rig.ctx, ids), timeout, "every due step to finish", interval=0.2)
    except TimeoutError:
        left = first_lines(f"{s.id}:{s.state}:{s.outcome[:80]}" for s in steps(rig.ctx, ids)
                           if s.state not in ("done", "skipped"))
        pytest.fail(f"steps left unfinished: {left}\n{rig.fleet.report()}")
    final = steps(rig.ctx, ids)
    bad = [f"{s.id}:{s.state}:{s.outcome[:120]}" for s in final if s.state != "done"]
    assert not bad, f"steps that did not end done: {first_lines(bad)}"
    msgs = messages_for(rig.ctx, ids)
    assert len(msgs) == len(ids), "one Message row per step (the idempotency key is unique)"
    assert {m.status for m in msgs} == {"sent"}
    time.sleep(0.3)  # let inotify report the last renames
    assert not rig.deliveries.overflowed, "the inotify queue overflowed; delivery counts are incomplete"
    delivered = rig.deliveries.snapshot()
    never = [m.idempotency_key for m in msgs if delivered[m.idempotency_key] == 0]
    assert not never, f"messages marked sent but never delivered: {first_lines(never)}"
    return Outcome(steps=len(ids), sent=len(msgs), duplicates=rig.deliveries.duplicates(),
                   rerun=sum(1 for s in final if s.attempts > 1))
