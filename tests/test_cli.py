"""The ``reagenda`` command as an operator meets it: real processes, real ports, real failures."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import pytest

from tests.procs import REAGENDA, alive, children_of, clean_env, free_port, processes_mentioning, wait_http


def run(args, env, timeout=60):  # type: ignore[no-untyped-def]
    return subprocess.run(REAGENDA + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_run_on_embedded_defaults_then_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = clean_env(REAGENDA_VAR_DIR=str(tmp_path / "var"), PORT=str(port))
    proc = subprocess.Popen(REAGENDA + ["run"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "database": "ok", "redis": "ok"}
        family = children_of(proc.pid)
        assert len(processes_mentioning(str(tmp_path / "var" / "redis.sock"))) == 1, "one embedded Redis"
        assert len(family) >= 4  # web (+ its workers), worker, dispatcher, redis-server

        st = run(["status", "--json"], env=dict(env, REDIS_URL=f"unix://{tmp_path}/var/redis.sock"))
        assert st.returncode == 0, st.stderr
        assert json.loads(st.stdout)["queue_depth"] == 0

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.1)
    assert not [p for p in family if alive(p)], "every child stopped, the embedded Redis included"
    assert not (tmp_path / "var" / "redis.sock").exists()
    assert "Reagenda is running" in out


def test_killing_the_supervisor_leaves_no_orphan_redis(tmp_path):
    port = free_port()
    env = clean_env(REAGENDA_VAR_DIR=str(tmp_path / "var"), PORT=str(port))
    proc = subprocess.Popen(REAGENDA + ["run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        family = children_of(proc.pid)
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs in the supervisor
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.1)
    assert not processes_mentioning(str(tmp_path / "var" / "redis.sock")), "the kernel stopped the embedded Redis"
    assert not [p for p in family if alive(p)]


def test_port_already_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["web"], clean_env(REAGENDA_VAR_DIR=str(tmp_path), PORT=str(port)))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"reagenda: port {port} is already in use; stop what is using it or set PORT "
                                     f"to a free port (for example PORT={port + 1})")


def test_unreachable_database_names_it_with_the_password_masked(tmp_path):
    env = clean_env(REAGENDA_VAR_DIR=str(tmp_path), DATABASE_URL="postgresql://ana:s3cret@127.0.0.1:1/reagenda")
    result = run(["db", "upgrade"], env)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("reagenda: database unreachable at postgresql+psycopg://ana:***@127.0.0.1:1/reagenda")
    assert "s3cret" not in result.stderr and "\n" not in line


def test_unreachable_redis_names_it_with_the_password_masked(tmp_path):
    env = clean_env(REAGENDA_VAR_DIR=str(tmp_path), REDIS_URL="redis://:s3cret@127.0.0.1:1/0")
    assert run(["db", "upgrade"], env).returncode == 0
    result = run(["status"], env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("reagenda: Redis unreachable at redis://:***@127.0.0.1:1/0")
    assert "s3cret" not in result.stderr


def test_web_refuses_to_start_without_its_database(tmp_path):
    env = clean_env(REAGENDA_VAR_DIR=str(tmp_path), PORT=str(free_port()),
                    DATABASE_URL="postgresql://ana:s3cret@127.0.0.1:1/reagenda", REDIS_URL="redis://127.0.0.1:1/0")
    result = run(["web"], env)
    assert result.returncode == 2
    assert result.stderr.startswith("reagenda: database unreachable at postgresql+psycopg://ana:***@127.0.0.1:1/")
    assert "s3cret" not in result.stderr


def test_malformed_variable_is_one_line(tmp_path):
    result = run(["status"], clean_env(REAGENDA_VAR_DIR=str(tmp_path), PORT="eighty"))
    assert result.returncode == 2
    assert result.stderr == "reagenda: PORT='eighty' is not a whole number; expected for example PORT=8000\n"


def test_worker_without_redis_url_or_embedded_server_says_what_to_do(tmp_path):
    result = run(["worker", "--burst"], clean_env(REAGENDA_VAR_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert "REDIS_URL is not set and no embedded Redis is running" in result.stderr


def test_run_against_postgres_and_real_redis(tmp_path, postgres_url, real_redis_url):
    port = free_port()
    env = clean_env(REAGENDA_VAR_DIR=str(tmp_path / "var"), PORT=str(port), DATABASE_URL=postgres_url,
                    REDIS_URL=real_redis_url)
    proc = subprocess.Popen(REAGENDA + ["run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert not processes_mentioning(str(tmp_path / "var" / "redis.sock")), "no embedded Redis with REDIS_URL"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("reagenda run did not stop on SIGTERM")
    assert proc.returncode == 0
