"""Owner accounts: sign up, sign in, sign out, password reset by email, and the per-request owner scope.

Passwords: Werkzeug's ``scrypt`` (``hashlib.scrypt``, n=2**15, r=8, p=1). It is memory-hard like argon2 and needs no
extra dependency; the method is stored in the hash, so raising the cost later re-hashes on the next sign-in.

Sign-in attempts are counted in Redis per (IP, email) and per IP before the password is checked, in a fixed window;
losing Redis only resets the counters. Sessions are Flask's signed cookie (HttpOnly, SameSite=Lax, Secure under https) and carry a digest of the
password hash, so changing the password signs out every other session. Every object a view loads goes through
``owned()``, which answers 404 for anything that is not the signed-in owner's.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from functools import wraps
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from flask import (Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session,
                   url_for)
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from store.models import Calendar, CalendarConnection, Message, Owner
from web.context import get_context

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])
HASH_METHOD = "scrypt:32768:8:1"
MIN_PASSWORD = 10
MAX_FAILS_PER_ACCOUNT = 5  # per IP + email, per window
MAX_FAILS_PER_IP = 50
WINDOW_S = 15 * 60
RESET_MAX_AGE_S = 3600
MAX_RESETS_PER_HOUR = 3


# ------------------------------------------------------------------------------------------ request scope


def db() -> Session:
    """This request's database session (closed at teardown; views commit explicitly before redirecting)."""
    if "db" not in g:
        g.db = get_context().sessions()
    return g.db  # type: ignore[no-any-return]


def _close_db(exc: BaseException | None) -> None:
    s = g.pop("db", None)
    if s is not None:
        if exc is not None:
            s.rollback()
        s.close()


def now():  # type: ignore[no-untyped-def]
    return get_context().clock.now()


def _auth_digest(owner: Owner) -> str:
    return hashlib.sha256((owner.password_hash or "").encode()).hexdigest()[:20]


def load_owner() -> None:
    """Put the signed-in owner (or None) on ``g`` before every request."""
    g.owner = None
    g.owner_id = None
    owner_id = session.get("owner_id")
    if owner_id is None or request.endpoint == "static":
        return
    owner = db().get(Owner, owner_id)
    if owner is None or session.get("auth") != _auth_digest(owner):
        session.clear()
        return
    g.owner, g.owner_id = owner, owner.id


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("owner") is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def owned(model: type, object_id: int) -> Any:
    """The signed-in owner's object of ``model`` with this id, or 404 (never 403: do not confirm it exists)."""
    obj = db().get(model, object_id)
    if obj is None:
        abort(404)
    if model is Calendar:
        conn = db().get(CalendarConnection, obj.connection_id)
        owner_id = conn.owner_id if conn else None
    else:
        owner_id = getattr(obj, "owner_id", None)
    if owner_id != g.owner_id:
        abort(404)
    return obj


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths: ``/x`` yes, ``//evil``, ``/\\evil``, ``https://evil`` no."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _sign_in(owner: Owner) -> None:
    keep_lang = session.get("lang")
    session.clear()  # new session on sign-in: no fixation, fresh CSRF token
    session.permanent = True
    session["owner_id"] = owner.id
    session["auth"] = _auth_digest(owner)
    if keep_lang:
        session["lang"] = keep_lang


# ------------------------------------------------------------------------------------------ rate limiting


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _keys(email: str) -> tuple[str, str]:
    ehash = hashlib.sha256(email.encode()).hexdigest()[:16]  # no address in Redis keys
    return f"rg:login:{_client_ip()}:{ehash}", f"rg:login-ip:{_client_ip()}"


def reserve_attempt(email: str) -> bool:
    """Count this attempt BEFORE the password is checked (INCR first, then compare), so a burst of concurrent
    guesses cannot all slip past the limit; a successful sign-in clears the account's counter. False: refuse."""
    try:
        r = get_context().redis
        pipe = r.pipeline()
        for key in _keys(email):
            pipe.set(key, 0, ex=WINDOW_S, nx=True)  # the window starts at the first attempt (works on Redis 6)
            pipe.incr(key)
        results = pipe.execute()
    except Exception as exc:  # noqa: BLE001 - Redis down must not lock everyone out, nor be silent
        log.warning("login rate limit unavailable: %s", type(exc).__name__)
        return True
    return int(results[1]) <= MAX_FAILS_PER_ACCOUNT and int(results[3]) <= MAX_FAILS_PER_IP


def clear_failures(email: str) -> None:
    try:
        get_context().redis.delete(_keys(email)[0])
    except Exception:  # noqa: BLE001
        pass


# ------------------------------------------------------------------------------------------ views


def _norm_email(raw: str) -> str:
    return raw.strip().lower()


def valid_timezone(name: str) -> bool:
    return name in available_timezones()


@bp.route("/signup", methods=["GET", "POST"])
def signup():  # type: ignore[no-untyped-def]
    if g.owner is not None:
        return redirect(url_for("dashboard.home"))
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        email = _norm_email(form.get("email", ""))
        password = form.get("password", "")
        business = form.get("business_name", "").strip()
        tzname = form.get("timezone", "Europe/Madrid").strip()
        locale = form.get("locale", "es")
        if "@" not in email or len(email) > 320:
            errors["email"] = _("Enter an email address like ana@example.com.")
        if len(password) < MIN_PASSWORD:
            errors["password"] = _("Use at least %(n)d characters.", n=MIN_PASSWORD)
        if not valid_timezone(tzname):
            errors["timezone"] = _("Choose a time zone from the list, for example Europe/Madrid.")
        if locale not in ("es", "en"):
            locale = "es"
        if not errors and db().scalar(select(func.count()).select_from(Owner).where(Owner.email == email)):
            errors["email"] = _("An account with this email already exists. Sign in or reset your password.")
        if not errors:
            owner = Owner(email=email, name=form.get("name", "").strip()[:200], business_name=business[:200],
                          password_hash=generate_password_hash(password, method=HASH_METHOD), timezone=tzname,
                          locale=locale, policy={}, invoice_seq=0, created_at=now(), preferences={})
            db().add(owner)
            db().commit()
            log.info("owner %s signed up", owner.id)
            _sign_in(owner)
            return redirect(url_for("dashboard.home"))
    return render_template("auth/signup.html", errors=errors, form=form, zones=COMMON_ZONES), 400 if errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    nxt = safe_next(request.values.get("next"), url_for("dashboard.home"))
    if g.owner is not None:
        return redirect(nxt)
    error = ""
    status = 200
    if request.method == "POST":
        email = _norm_email(request.form.get("email", ""))
        password = request.form.get("password", "")
        if not reserve_attempt(email):
            error = _("Too many failed attempts. Wait 15 minutes or reset your password.")
            status = 429
        else:
            owner = db().scalar(select(Owner).where(Owner.email == email))
            if owner is not None and owner.password_hash and check_password_hash(owner.password_hash, password):
                clear_failures(email)
                if not owner.password_hash.startswith(HASH_METHOD):
                    owner.password_hash = generate_password_hash(password, method=HASH_METHOD)
                    db().commit()
                _sign_in(owner)
                return redirect(nxt)
            error = _("Email or password is not right. Check both, or reset your password.")
            status = 401
    return render_template("auth/login.html", error=error, next=nxt, email=request.form.get("email", "")), status


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="reagenda.password-reset.v1")


def reset_token(owner: Owner) -> str:
    """Signed (owner, digest of the current hash): the token stops working once the password changes."""
    return _reset_serializer().dumps({"o": owner.id, "h": _auth_digest(owner)})


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():  # type: ignore[no-untyped-def]
    sent = False
    if request.method == "POST":
        email = _norm_email(request.form.get("email", ""))
        owner = db().scalar(select(Owner).where(Owner.email == email))
        if owner is not None and not _reset_flood(email):
            _send_reset_email(owner)
        sent = True  # same answer either way: the page does not reveal who has an account
    return render_template("auth/reset_request.html", sent=sent)


def _reset_flood(email: str) -> bool:
    """At most ``MAX_RESETS_PER_HOUR`` reset emails per address, so the form cannot be used to flood an inbox."""
    key = "rg:reset:" + hashlib.sha256(email.encode()).hexdigest()[:16]
    try:
        r = get_context().redis
        pipe = r.pipeline()
        pipe.set(key, 0, ex=3600, nx=True)
        pipe.incr(key)
        count = pipe.execute()[1]
    except Exception as exc:  # noqa: BLE001
        log.warning("reset rate limit unavailable: %s", type(exc).__name__)
        return False
    return int(count) > MAX_RESETS_PER_HOUR


def _send_reset_email(owner: Owner) -> None:
    """Through the configured email channel (the outbox by default), recorded in ``messages`` like any mail."""
    from channels.base import OutgoingMessage
    from channels.registry import email_channel

    ctx = get_context()
    link = ctx.settings.base_url + url_for("auth.reset_confirm", token=reset_token(owner))
    if owner.locale == "en":
        subject = "Reset your Reagenda password"
        text = (f"Someone (hopefully you) asked to reset the password for {owner.email}.\n\n"
                f"Choose a new password here (valid for one hour):\n{link}\n\n"
                "If it was not you, ignore this email: your password stays as it is.\n")
    else:
        subject = "Restablece tu contraseña de Reagenda"
        text = (f"Alguien (esperamos que tú) pidió restablecer la contraseña de {owner.email}.\n\n"
                f"Elige una nueva aquí (válido durante una hora):\n{link}\n\n"
                "Si no fuiste tú, ignora este correo: tu contraseña sigue igual.\n")
    key = f"pwreset-{owner.id}-{secrets.token_hex(8)}"
    msg = Message(owner_id=owner.id, client_id=None, appointment_id=None, step_id=None, kind="password_reset",
                  channel="email", recipient=owner.email, locale=owner.locale, subject=subject, body_text=text,
                  body_html="", idempotency_key=key, status="sending", provider_id="", error="", created_at=now())
    db().add(msg)
    db().commit()
    try:
        msg.provider_id = email_channel(ctx.settings).send(OutgoingMessage(
            idempotency_key=key, recipient=owner.email, sender=ctx.settings.email_from, subject=subject, text=text,
            message_id=msg.id))
        msg.status, msg.sent_at = "sent", now()
    except Exception as exc:  # noqa: BLE001 - the owner sees "failed" in the outbox; the link is never logged
        log.warning("password reset email for owner %s failed: %s", owner.id, type(exc).__name__)
        msg.status, msg.error = "failed", type(exc).__name__
    db().commit()


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_confirm(token: str):  # type: ignore[no-untyped-def]
    try:
        data = _reset_serializer().loads(token, max_age=RESET_MAX_AGE_S)
    except SignatureExpired:
        return render_template("auth/reset_invalid.html", expired=True), 400
    except BadSignature:
        return render_template("auth/reset_invalid.html", expired=False), 400
    owner = db().get(Owner, data.get("o"))
    if owner is None or data.get("h") != _auth_digest(owner):
        return render_template("auth/reset_invalid.html", expired=False), 400
    error = ""
    if request.method == "POST":
        password = request.form.get("password", "")
        if len(password) < MIN_PASSWORD:
            error = _("Use at least %(n)d characters.", n=MIN_PASSWORD)
        else:
            owner.password_hash = generate_password_hash(password, method=HASH_METHOD)
            db().commit()
            clear_failures(owner.email)
            _sign_in(owner)
            flash(_("Your password was changed."), "ok")
            return redirect(url_for("dashboard.home"))
    return render_template("auth/reset_confirm.html", error=error), 400 if error else 200


COMMON_ZONES = (
    "Europe/Madrid", "Atlantic/Canary", "Europe/London", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
    "America/Mexico_City", "America/Bogota", "America/Lima", "America/Santiago", "America/Argentina/Buenos_Aires",
    "America/Caracas", "America/Montevideo", "America/New_York", "America/Chicago", "America/Denver",
    "America/Los_Angeles", "America/Sao_Paulo", "UTC",
)


def init_app(app: Flask) -> None:
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", 14 * 24 * 3600)
    app.config["SESSION_COOKIE_NAME"] = "reagenda_session"
    app.before_request(load_owner)
    app.teardown_request(_close_db)
    app.register_blueprint(bp)
