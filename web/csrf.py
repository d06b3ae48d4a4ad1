"""CSRF protection for every form: a per-session synchronizer token checked on every unsafe request.

Why not Flask-WTF: the app has no WTForms forms, and the whole mechanism is twenty lines we can read. The token
lives in the (signed, HttpOnly) session cookie and in a hidden ``csrf_token`` field rendered by ``csrf_field()``;
a POST without the matching value is refused with 400 before the view runs. Endpoints that receive requests from
other servers (inbound email webhooks, provider push notifications) opt out with ``exempt`` and authenticate those
requests their own way.
"""
from __future__ import annotations

import hmac
import secrets
from typing import Callable, TypeVar

from flask import Blueprint, Flask, abort, current_app, request, session
from markupsafe import Markup

F = TypeVar("F", bound=Callable[..., object])
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token() -> str:
    """This session's token, created on first use."""
    value = session.get(FIELD)
    if not value:
        value = secrets.token_urlsafe(32)
        session[FIELD] = value
    return str(value)


def field() -> Markup:
    return Markup('<input type="hidden" name="%s" value="%s">') % (FIELD, token())


_EXEMPT: set[str] = set()


def exempt(target: F | Blueprint) -> F | Blueprint:
    """Exclude a view function or a whole blueprint (e.g. a webhook receiver) from the check. Usable as a
    decorator on the view, or called once with the blueprint object at import time."""
    name = target.name if isinstance(target, Blueprint) else f"{target.__module__}.{target.__name__}"
    _EXEMPT.add(name)
    return target


def _is_exempt(app: Flask) -> bool:
    if request.blueprint and request.blueprint in _EXEMPT:
        return True
    view = app.view_functions.get(request.endpoint or "")
    return view is not None and f"{view.__module__}.{view.__name__}" in _EXEMPT


def protect() -> None:
    if request.method not in UNSAFE:
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if _is_exempt(app):
        return
    expected = session.get(FIELD)
    sent = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(400, description="csrf")


def init_app(app: Flask) -> None:
    app.before_request(protect)
    app.jinja_env.globals["csrf_field"] = field
    app.jinja_env.globals["csrf_token"] = token
