"""The Flask web app: ``create_app(settings=None)`` with one blueprint per area.

Blueprints live in their own modules (``web.health``, ...) and are registered in ``create_app``. To add an area:
write a blueprint module, register it here, and put its templates under ``web/templates/<area>/``.
"""
from __future__ import annotations

import logging

from flask import Flask

from reagenda.settings import Settings, load

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, context: "object | None" = None) -> Flask:
    """Build the app. Connections are made lazily on first use, so importing or creating the app never blocks."""
    settings = settings or load()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.extensions["reagenda.settings"] = settings
    if context is not None:
        app.extensions["reagenda.context"] = context

    from web import health

    app.register_blueprint(health.bp)
    from web import push  # issue 3: provider push endpoints (Google channels, Graph notifications)

    app.register_blueprint(push.bp)
    from web import booking  # issue 7: public booking and reschedule pages

    app.register_blueprint(booking.bp)
    from web import inbound, links  # issue 5: email webhooks and one-click link pages

    app.register_blueprint(inbound.bp)
    app.register_blueprint(links.bp)
    _init_owner_pages(app)
    return app


def _init_owner_pages(app: Flask) -> None:
    """Issue 6: security headers, CSRF, languages, accounts and the owner pages (one blueprint per area)."""
    from web import auth, connect, csrf, dashboard, i18n, insights, layout, security, settings_pages

    security.init_app(app)
    auth.init_app(app)  # loads the signed-in owner first: the language and the banner depend on it
    csrf.init_app(app)
    i18n.init_app(app)
    layout.init_app(app)
    for area in (dashboard, settings_pages, connect, insights):
        app.register_blueprint(area.bp)
