"""RQ job entry points: thin functions that find the runtime context and call the executor."""
from __future__ import annotations

from reagenda import runtime
from workflows import executor


def execute_step(step_id: int) -> str:
    return executor.execute(runtime.current(), step_id)
