"""What every page shares: the navigation, the "reconnect your calendar" banner, flash messages and error pages."""
from __future__ import annotations

from typing import Any

from flask import Flask, g, render_template, request
from sqlalchemy import select

from store.models import CalendarConnection


def page_context() -> dict[str, Any]:
    """Connections that need the owner's attention, shown as a banner at the top of every owner page."""
    owner = g.get("owner")
    if owner is None or request.endpoint == "static":
        return {"broken_connections": []}
    from web.auth import db

    broken = list(db().scalars(select(CalendarConnection).where(
        CalendarConnection.owner_id == owner.id, CalendarConnection.status != "ok")))
    return {"broken_connections": broken}


def _error(code: int):  # type: ignore[no-untyped-def]
    def handler(exc: Exception):  # type: ignore[no-untyped-def]
        description = getattr(exc, "description", "")
        return render_template("errors/error.html", code=code, csrf=(description == "csrf")), code

    return handler


def init_app(app: Flask) -> None:
    app.context_processor(page_context)
    for code in (400, 403, 404, 405, 429, 500):
        app.register_error_handler(code, _error(code))
