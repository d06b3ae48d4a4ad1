"""Helpers for tests that run real ``reagenda`` processes."""
from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REAGENDA = [sys.executable, "-m", "reagenda.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without Reagenda's own variables, plus ``overrides``."""
    drop = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "BASE_URL", "PORT", "EMAIL_BACKEND", "REAGENDA_VAR_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(overrides)
    return env


def wait_http(url: str, timeout: float = 120.0) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def children_of(pid: int) -> set[int]:
    """All live descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents[int(entry.name)] = ppid
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        nxt = {p for p, pp in parents.items() if pp in frontier and p not in found}
        found |= nxt
        frontier = nxt
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd and alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids
