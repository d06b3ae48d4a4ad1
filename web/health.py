"""``GET /healthz``: is the database reachable, is Redis reachable. 200 when both are, 503 otherwise."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from store.db import ping
from web.context import get_context

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    checks: dict[str, str] = {}
    try:
        ctx = get_context()
    except Exception as exc:  # noqa: BLE001 - report, don't crash
        return jsonify(status="error", database="unknown", redis="unknown", error=str(exc)), 503
    try:
        ping(ctx.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        log.warning("healthz: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
    try:
        ctx.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        log.warning("healthz: redis unreachable: %s", type(exc).__name__)
        checks["redis"] = "unreachable"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", **checks), 200 if ok else 503
