"""RQ job entry points: thin functions that find the runtime context and call the executor."""
from __future__ import annotations

from reagenda import runtime
from workflows import executor


def execute_step(step_id: int) -> str:
    return executor.execute(runtime.current(), step_id)


def execute_steps(step_ids: list[int]) -> dict[int, str]:
    """A batch of steps in one job: RQ's own cost (enqueue, dequeue, status bookkeeping) is paid once per batch."""
    return executor.execute_many(runtime.current(), list(step_ids))
