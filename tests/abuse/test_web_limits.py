"""Abuse against the real ``reagenda web`` process (gunicorn, several workers and threads), not the test client:

- a password-guessing burst, sequential and then concurrent, is throttled: at most the allowed number of wrong
  passwords is ever checked for one account, the right password is refused while throttled (429), and spraying
  many accounts from one address hits the per-address limit;
- a request that declares a body larger than the limit is refused (413, or 400 from a JSON endpoint) at once,
  before the body is sent.
"""
from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
import requests

from store.migrate import upgrade
from reagenda.settings import load
from tests.faults.harness import Fleet, PrivateRedis, free_port, reagenda_env, wait_for
from web.auth import MAX_FAILS_PER_ACCOUNT, MAX_FAILS_PER_IP

pytestmark = [pytest.mark.slow]

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "redis").mkdir()
    red = PrivateRedis(tmp_path / "redis").start()
    env = reagenda_env(tmp_path / "var", f"sqlite:///{tmp_path / 'web.db'}", red.url)
    upgrade(load(env).database_url)
    fleet = Fleet(tmp_path, env)
    port = free_port()
    proc = fleet.start("web", "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{base}/healthz") < 500, 60, f"reagenda web on {base}\n{proc.tail()}")
        yield base
    finally:
        fleet.stop_all()
        red.close()


def _status(url: str) -> int:
    with requests.get(url, timeout=2) as r:
        return r.status_code


def _sign_up(base: str, email: str) -> None:
    with requests.Session() as s:
        token = CSRF.search(s.get(f"{base}/signup", timeout=10).text).group(1)  # type: ignore[union-attr]
        r = s.post(f"{base}/signup", data={"csrf_token": token, "email": email, "password": PASSWORD,
                                           "business_name": "Estudio", "timezone": "Europe/Madrid", "locale": "en"},
                   allow_redirects=False, timeout=20)
        assert r.status_code == 302, r.text[:300]


def _login(base: str, email: str, password: str) -> int:
    with requests.Session() as s:
        token = CSRF.search(s.get(f"{base}/login", timeout=10).text)
        assert token, "the login page has a CSRF field"
        return s.post(f"{base}/login", data={"csrf_token": token.group(1), "email": email, "password": password},
                      allow_redirects=False, timeout=30).status_code


def test_sequential_guessing_is_throttled_and_spraying_hits_the_address_limit(web: str) -> None:
    _sign_up(web, "ana@example.com")
    codes = [_login(web, "ana@example.com", f"guess-{i}") for i in range(MAX_FAILS_PER_ACCOUNT + 3)]
    assert codes[:MAX_FAILS_PER_ACCOUNT] == [401] * MAX_FAILS_PER_ACCOUNT
    assert set(codes[MAX_FAILS_PER_ACCOUNT:]) == {429}
    assert _login(web, "ana@example.com", PASSWORD) == 429, "the right password waits too"

    sprayed = [_login(web, f"user{i}@example.com", "guess") for i in range(MAX_FAILS_PER_IP)]
    assert sprayed[-1] == 429, "many accounts from one address hit the per-address limit"


def test_a_concurrent_guessing_burst_gets_no_more_guesses(web: str) -> None:
    _sign_up(web, "eva@example.com")
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda i: _login(web, "eva@example.com", f"guess-{i}"), range(32)))
    checked = codes.count(401)
    assert checked <= MAX_FAILS_PER_ACCOUNT, f"{checked} passwords were checked in a burst (limit "\
                                             f"{MAX_FAILS_PER_ACCOUNT}): {codes}"


def test_an_oversized_body_is_refused_before_it_is_sent(web: str) -> None:
    host, port = web.removeprefix("http://").split(":")
    for path in ("/login", "/signup", "/push/graph", "/l/sometoken"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
                          f"\r\nContent-Length: {500 * 1024 * 1024}\r\n\r\n").encode() + b"a=" + b"x" * 1000)
            start = time.monotonic()
            head = sock.recv(200).decode(errors="replace")
            took = time.monotonic() - start
        status = head.split(" ", 2)[1] if head.startswith("HTTP/") else head[:60]
        # 413 where the form is read; a JSON endpoint that cannot parse the body says 400: either way, refused.
        assert status in ("413", "400"), f"POST {path} with a 500 MB body answered {status!r}"
        assert took < 5, f"POST {path}: the refusal took {took:.1f}s (the body was being read)"
