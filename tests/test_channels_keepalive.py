"""channels/keepalive.py against a real socket server: connections are reused, a connection the server closed
while idle is replaced before anything is written, and a request that may have reached the server is never
written twice by the transport (the engine retries it under the message's idempotency key instead)."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import pytest

from channels.base import TransientChannelError
from channels.keepalive import KeptAlive


@dataclass
class ScriptedServer:
    """Answers each request per ``mode``: "keep" (202, kept alive), "close_after" (202, then closes the connection
    without saying so, as an idle timeout does), "close_header" (202 with ``Connection: close``), "chunked" (a
    chunked JSON body), "http10" (an HTTP/1.0 answer ended by closing), "vanish" (reads the request, then closes without answering)."""

    mode: str = "keep"
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v3/mail/send"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + reader.read(length))
                if self.mode == "vanish":
                    return
                if self.mode == "http10":  # no length: the body ends when the connection does
                    conn.sendall(b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nall of it")
                    return
                if self.mode == "chunked":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")
                    continue
                extra = b"Connection: close\r\n" if self.mode == "close_header" else b""
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nX-Message-Id: abc\r\n" + extra
                             + b"Content-Length: 0\r\n\r\n")
                if self.mode in ("close_after", "close_header"):
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture
def kept():  # type: ignore[no-untyped-def]
    k = KeptAlive()
    yield k
    k.close()


def _post(kept: KeptAlive, url: str, n: int = 1, pause: float = 0.0) -> list[int]:
    statuses = []
    for i in range(n):
        time.sleep(pause)  # idle time between messages, in which a server may close the connection
        statuses.append(kept.request("POST", url, b'{"n": %d}' % i, {"Content-Type": "application/json"}, 5.0).status)
    return statuses


def test_requests_share_one_connection(server, kept):  # type: ignore[no-untyped-def]
    assert _post(kept, server.url, 5) == [202] * 5
    assert server.accepted == 1 and len(server.requests) == 5


@pytest.mark.parametrize("mode", ["close_after", "close_header"])
def test_a_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice(server, kept, mode):  # type: ignore[no-untyped-def]
    server.mode = mode
    assert _post(kept, server.url, 3, pause=0.05) == [202] * 3
    assert server.accepted == 3, "a new connection for each request after the server closed the last one"
    assert len(server.requests) == 3, "every request written exactly once"


def test_a_chunked_error_body_is_read_whole(server, kept):  # type: ignore[no-untyped-def]
    server.mode = "chunked"
    reply = kept.request("POST", server.url, b"{}", {}, 5.0)
    assert reply.status == 400 and reply.body == b'{"a": 1}'


def test_an_http10_answer_without_length_is_read_to_the_end_and_the_connection_replaced(server, kept):  # type: ignore[no-untyped-def]
    server.mode = "http10"
    first = kept.request("GET", server.url, None, {}, 5.0)
    second = kept.request("GET", server.url, None, {}, 5.0)
    assert (first.status, first.body, first.headers["X-A"]) == (200, b"all of it", "1")
    assert second.body == b"all of it" and server.accepted == 2


def test_a_header_value_cannot_start_a_new_header(server, kept):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        kept.request("POST", server.url, b"{}", {"X-Note": "a\r\nBcc: someone"}, 5.0)
    assert server.requests == []


def test_a_request_that_may_have_arrived_is_not_repeated(server, kept):  # type: ignore[no-untyped-def]
    server.mode = "vanish"
    with pytest.raises(ConnectionError):
        kept.request("POST", server.url, b"{}", {}, 5.0)
    assert len(server.requests) == 1


def test_the_sendgrid_channel_reports_a_vanished_answer_as_transient(server):  # type: ignore[no-untyped-def]
    from channels.base import OutgoingMessage
    from channels.sendgrid import SendGridChannel
    from reagenda.settings import load

    server.mode = "vanish"
    settings = load({"SECRET_KEY": "k" * 32, "EMAIL_BACKEND": "sendgrid", "SENDGRID_API_KEY": "SG.test",
                     "SENDGRID_HOST": server.url.removesuffix("/v3/mail/send")})
    message = OutgoingMessage(idempotency_key="k1", recipient="ana@example.com", sender="Estudio <a@b.es>",
                              subject="Hola", text="Hola", message_id=1)
    with pytest.raises(TransientChannelError) as caught:
        SendGridChannel(settings).send(message)
    assert "SG.test" not in str(caught.value)
    assert len(server.requests) == 1, "the channel does not repeat a request itself"
