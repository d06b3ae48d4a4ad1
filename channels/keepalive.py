"""Kept-alive HTTP/1.1 connections to a provider's API: one per thread and host, reused message after message.

Why: the SendGrid library's HTTP layer (python_http_client) builds a urllib opener and opens a new TCP (and TLS)
connection for every request. At hundreds of messages a second that was half of a worker's CPU
(``bench/dispatch.py``), and against the real API each message would also pay a TLS handshake.

A POST is never repeated here once it may have reached the server. A connection the server closed while it sat
idle is noticed before the request is written (an idle socket that reads as ready has been closed or has stray
data) and replaced; a failure after the request was written is raised for the caller to classify, and the engine
retries under the message's idempotency key, exactly as for a connection that failed the first time.
"""
from __future__ import annotations

import http.client
import os
import select
import ssl
import threading
from dataclasses import dataclass
from email.message import Message as Headers
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """A complete response: the connection is free for the next request as soon as this exists."""

    status: int
    reason: str
    headers: Headers
    body: bytes


class KeptAlive:
    """Connections keyed by (process, thread, scheme, host, port). Safe to share between threads; after a fork the
    child opens its own connections instead of writing to the parent's sockets."""

    def __init__(self) -> None:
        self._local = threading.local()

    def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
                timeout: float) -> Reply:
        parts = urlsplit(url)
        conn = self._connection(parts.scheme, parts.hostname or "", parts.port, timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, path or "/", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()  # half-used: never reuse it
            raise
        if response.will_close:
            conn.close()  # the server said so (HTTP/1.0 or "Connection: close"); the next request reconnects
        return Reply(response.status, response.reason, response.msg, data)

    def close(self) -> None:
        for conn in self._pool().values():
            conn.close()
        self._pool().clear()

    def _pool(self) -> dict[tuple[object, ...], http.client.HTTPConnection]:
        pool = getattr(self._local, "pool", None)
        if pool is None or getattr(self._local, "pid", None) != os.getpid():
            pool = self._local.pool = {}
            self._local.pid = os.getpid()
        return pool

    def _connection(self, scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        pool = self._pool()
        conn = pool.get(key)
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            conn.close()  # closed by the server while idle: connect afresh before writing anything
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            pool[key] = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn


def _dropped(sock: object) -> bool:
    """An idle kept-alive socket has nothing to read; readable means the peer closed it (or broke the protocol)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
