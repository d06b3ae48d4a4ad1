"""Kept-alive HTTP/1.1 connections to a provider's API: one per thread and host, reused message after message.

Why: the SendGrid library's HTTP layer (python_http_client) builds a urllib opener and opens a new TCP (and TLS)
connection for every request. At hundreds of messages a second that was half of a worker's CPU
(``bench/dispatch.py``), and against the real API each message would also pay a TLS handshake. The exchange itself
is written here rather than with ``http.client``, whose header handling (the ``email`` package's parser) cost
about as much CPU again as the rest of a request: a request is one write (head and body together), a response is
a status line, header lines and a body delimited by Content-Length, chunked encoding or the end of the connection.

A POST is never repeated here once it may have reached the server. A connection the server closed while it sat
idle is noticed before the request is written (an idle socket that reads as ready has been closed or has stray
data) and replaced; a failure after the request was written is raised for the caller to classify, and the engine
retries under the message's idempotency key, exactly as for a connection that failed the first time.
"""
from __future__ import annotations

import functools
import os
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from http.client import BadStatusLine, HTTPMessage, IncompleteRead, LineTooLong, RemoteDisconnected
from urllib.parse import urlsplit

MAX_LINE = 65536
MAX_HEADERS = 100


@dataclass(frozen=True)
class Reply:
    """A complete response: the connection is free for the next request as soon as this exists."""

    status: int
    reason: str
    headers: HTTPMessage
    body: bytes


class KeptAlive:
    """Connections keyed by (scheme, host, port) per thread. Safe to share between threads; after a fork the child
    opens its own connections instead of writing to the parent's sockets."""

    def __init__(self) -> None:
        self._local = threading.local()

    def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
                timeout: float) -> Reply:
        parts = urlsplit(url)
        conn = self._connection(parts.scheme, parts.hostname or "", parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            reply, keep = conn.exchange(method, path, body, headers, timeout)
        except BaseException:
            conn.close()  # half-used: never reuse it
            raise
        if not keep:
            conn.close()  # the server said so (HTTP/1.0, "Connection: close", a body ended by closing)
        return reply

    def close(self) -> None:
        for conn in self._pool().values():
            conn.close()
        self._pool().clear()

    def _pool(self) -> dict[tuple[str, str, int | None], "_Connection"]:
        pool = getattr(self._local, "pool", None)
        if pool is None or getattr(self._local, "pid", None) != os.getpid():
            pool = self._local.pool = {}
            self._local.pid = os.getpid()
        return pool

    def _connection(self, scheme: str, host: str, port: int | None) -> "_Connection":
        if scheme not in ("http", "https") or not host:
            raise ValueError(f"not an http(s) URL: {scheme}://{host}")
        pool = self._pool()
        key = (scheme, host, port)
        if key not in pool:
            pool[key] = _Connection(scheme, host, port)
        return pool[key]


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Connection:
    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        self.scheme, self.host = scheme, host
        self.port = port or (443 if scheme == "https" else 80)
        self.host_header = host if port is None else f"{host}:{port}"
        self.sock: socket.socket | None = None
        self.reader = None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None

    def _open(self, timeout: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            sock = _tls().wrap_socket(sock, server_hostname=self.host)
        self.sock, self.reader = sock, sock.makefile("rb")

    def exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                 timeout: float) -> tuple[Reply, bool]:
        """Write one request and read its response. Returns the reply and whether the connection stays open."""
        if self.sock is not None and _dropped(self.sock):
            self.close()  # closed by the server while idle: connect afresh before writing anything
        if self.sock is None:
            self._open(timeout)
        assert self.sock is not None
        self.sock.settimeout(timeout)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        for name, value in headers.items():
            if name.lower() in ("host", "content-length"):
                continue
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break")  # never let a value start a new header
            lines.append(f"{name}: {value}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return self._response(method)

    def _line(self) -> bytes:
        line = self.reader.readline(MAX_LINE + 1)  # type: ignore[union-attr]
        if len(line) > MAX_LINE:
            raise LineTooLong("header line")
        return line

    def _response(self, method: str) -> tuple[Reply, bool]:
        while True:
            status_line = self._line()
            if not status_line:
                raise RemoteDisconnected("the server closed the connection without answering")
            try:
                version, status_text, *rest = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                status = int(status_text)
            except ValueError:
                raise BadStatusLine(status_line.decode("latin-1", "replace")) from None
            if not version.startswith("HTTP/") or not 100 <= status <= 999:
                raise BadStatusLine(status_line.decode("latin-1", "replace"))
            headers = self._headers()
            if not 100 <= status < 200:
                break  # 1xx (100 Continue, 103 Early Hints) come before the real answer
        connection = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            body = self._chunked()
        elif headers.get("Content-Length") is not None:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                raise BadStatusLine(f"Content-Length {headers['Content-Length']!r}") from None
            body = self.reader.read(length)  # type: ignore[union-attr]
            if len(body) < length:
                raise IncompleteRead(body, length - len(body))
        else:
            body, keep = self.reader.read(), False  # type: ignore[union-attr]  # ended by closing
        return Reply(status, rest[0] if rest else "", headers, body), keep

    def _headers(self) -> HTTPMessage:
        headers = HTTPMessage()
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip()] = value.strip()
        raise LineTooLong(f"more than {MAX_HEADERS} headers")

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadStatusLine(f"chunk size {size_line!r}") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            chunk = self.reader.read(size)  # type: ignore[union-attr]
            if len(chunk) < size:
                raise IncompleteRead(chunk, size - len(chunk))
            parts.append(chunk)
            self._line()  # the CRLF after each chunk


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive socket has nothing to read; readable means the peer closed it (or broke the protocol)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
