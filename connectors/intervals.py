"""Busy-time arithmetic shared by the connectors: merge overlapping or touching intervals into one."""
from __future__ import annotations

from collections.abc import Iterable

from connectors.base import BusyInterval


def merge(intervals: Iterable[BusyInterval]) -> list[BusyInterval]:
    """Sorted, non-overlapping intervals; ones that overlap or touch become one (what free/busy callers expect)."""
    out: list[BusyInterval] = []
    for item in sorted(intervals, key=lambda b: (b.starts_at, b.ends_at)):
        if item.ends_at <= item.starts_at:
            continue
        if out and item.starts_at <= out[-1].ends_at:
            if item.ends_at > out[-1].ends_at:
                out[-1] = BusyInterval(out[-1].starts_at, item.ends_at)
            continue
        out.append(item)
    return out
