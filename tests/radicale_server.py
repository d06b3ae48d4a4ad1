"""A real Radicale CalDAV server for tests and the benchmark: a subprocess, htpasswd auth, temporary storage.

Radicale refuses port 0 in its configuration, so a free port is picked by the OS (bind to port 0, read it, close)
and the start is retried on the rare race where someone else takes it first. A subprocess rather than a thread
keeps Radicale's work off our interpreter's GIL, so the benchmark measures the client, not the two together.

    with RadicaleServer() as server:
        server.make_calendar("work")       # → the calendar's URL
        server.url, server.username, server.password
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO

import requests


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RadicaleServer:
    def __init__(self, username: str = "ana", password: str | None = None) -> None:
        self.username = username
        self.password = password or uuid.uuid4().hex
        self.folder = Path(tempfile.mkdtemp(prefix="rg-radicale-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, attempts: int = 5) -> "RadicaleServer":
        (self.folder / "users").write_text(f"{self.username}:{self.password}\n")
        last = ""
        for _ in range(attempts):
            self.port = free_port()
            self._log = open(self.folder / "radicale.log", "ab")  # noqa: SIM115 - closed in stop()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{self.port}",
                 "--storage-filesystem-folder", str(self.folder / "collections"),
                 "--auth-type", "htpasswd", "--auth-htpasswd-filename", str(self.folder / "users"),
                 "--auth-htpasswd-encryption", "plain", "--logging-level", "warning",
                 "--rights-type", "owner_only", "--web-type", "none"],
                stdout=subprocess.DEVNULL, stderr=self._log,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            if self._wait_ready():
                return self
            last = (self.folder / "radicale.log").read_text(errors="replace")[-500:]
            self.stop(remove=False)
        raise RuntimeError(f"Radicale did not start after {attempts} attempts; last log:\n{last}")

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def make_calendar(self, name: str = "work", *, display_name: str = "") -> str:
        """Create a calendar collection under the user's principal and return its URL."""
        auth = (self.username, self.password)
        requests.request("MKCOL", f"{self.url}{self.username}/", auth=auth, timeout=10)
        url = f"{self.url}{self.username}/{name}/"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{display_name or name}</D:displayname>"
            "</D:prop></D:set></C:mkcalendar>"
        )
        response = requests.request("MKCALENDAR", url, data=body, auth=auth, timeout=10)
        if response.status_code not in (201, 405):  # 405: exists already
            raise RuntimeError(f"MKCALENDAR {url} answered {response.status_code}: {response.text[:200]}")
        return url

    def put(self, calendar_url: str, name: str, ics: str) -> str:
        """Write one object straight to the server (as another client would); returns its new ETag."""
        response = requests.put(f"{calendar_url}{name}", data=ics.encode(), auth=(self.username, self.password),
                                headers={"Content-Type": "text/calendar; charset=utf-8"}, timeout=10)
        response.raise_for_status()
        return response.headers.get("ETag", "")

    def delete(self, calendar_url: str, name: str) -> None:
        requests.delete(f"{calendar_url}{name}", auth=(self.username, self.password), timeout=10)

    def stop(self, *, remove: bool = True) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "RadicaleServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
