"""GET /healthz reports database and Redis reachability as JSON."""
from __future__ import annotations

from reagenda.settings import load
from web import create_app


def test_healthz_ok_on_both_backends(stack):
    app = create_app(stack.settings, context=stack.ctx)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_reports_unreachable_redis(sqlite_settings):
    # sqlite_settings points REDIS_URL at a closed port.
    app = create_app(sqlite_settings)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "ok" and body["redis"] == "unreachable" and body["status"] == "degraded"


def test_create_app_does_not_connect(tmp_path):
    """Building the app must not touch the database or Redis (no import-time or build-time side effects)."""
    settings = load({"REAGENDA_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                     "REDIS_URL": "redis://127.0.0.1:1/0", "SECRET_KEY": "k" * 32})
    create_app(settings)
