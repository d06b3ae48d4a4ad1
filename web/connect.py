"""Connect calendars: CalDAV (URL, username, app password; discovery; tested before saving), Google and Microsoft
OAuth (state + PKCE, offline access, narrow scopes), choosing the calendars to watch and the one that receives
bookings, syncing, and disconnecting (revoke, then delete the tokens). Credentials are stored encrypted
(``store.crypto``, Fernet); the provider code is ``connectors/``, the sync engine ``workflows.sync``; this module
only drives them from forms. Also the demo button (``web.demo``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from store.models import Calendar, CalendarConnection
from web import csrf, oauth
from web.auth import db, login_required, now, owned
from web.context import get_context

log = logging.getLogger(__name__)
bp = Blueprint("connect", __name__, url_prefix="/calendars")


# ------------------------------------------------------------------------------------------ adapters to issue 3


def encrypt(data: dict[str, Any]) -> str:
    from store.crypto import encrypt_credentials

    return encrypt_credentials(get_context().settings.secret_key, data)


def decrypt(blob: str) -> dict[str, Any]:
    from store.crypto import decrypt_credentials

    return decrypt_credentials(get_context().settings.secret_key, blob)


def connector_options() -> dict[str, Any]:
    """Per-deployment connector knobs (tests point Google/Microsoft at local fakes through app config)."""
    return dict(current_app.config.get("REAGENDA_CONNECTOR_OPTIONS", {}))


def connector_for(provider: str, credentials: dict[str, Any]) -> Any:
    from connectors import registry

    opts = connector_options().get(provider, {})
    return registry.build(provider, credentials, settings=get_context().settings, **opts)


def sync_connection(conn: CalendarConnection) -> str:
    """Run one sync of every watched calendar of ``conn`` now; returns a line for the owner."""
    from workflows import sync

    db().commit()  # the sync opens its own session: what this request wrote must be visible to it
    results = sync.sync_connection(get_context(), conn.id, **connector_options().get(conn.provider, {}))
    new = sum(r.count("new") for r in results)
    moved = sum(r.count("moved") for r in results)
    cancelled = sum(r.count("cancelled") for r in results)
    failed = [r for r in results if r.status not in ("ok", "not_due")]
    if failed:
        return _("Sync finished with problems: %(detail)s", detail="; ".join(str(r) for r in failed)[:300])
    return _("Synced: %(new)d new, %(moved)d moved, %(cancelled)d cancelled appointment(s).", new=new, moved=moved,
             cancelled=cancelled)


# ------------------------------------------------------------------------------------------ pages


@bp.get("")
@login_required
def index():  # type: ignore[no-untyped-def]
    conns = list(db().scalars(select(CalendarConnection).where(CalendarConnection.owner_id == g.owner_id)
                              .order_by(CalendarConnection.created_at)))
    cals: dict[int, list[Calendar]] = {c.id: [] for c in conns}
    if conns:
        for cal in db().scalars(select(Calendar).where(Calendar.connection_id.in_(list(cals)))
                                .order_by(Calendar.name)):
            cals[cal.connection_id].append(cal)
    return render_template("connect/index.html", conns=conns, cals=cals, google=oauth.google_configured(),
                           microsoft=oauth.microsoft_configured())


@bp.route("/caldav", methods=["GET", "POST"])
@login_required
def caldav():  # type: ignore[no-untyped-def]
    """Test first (discovery lists the calendars), then save; saving tests again so a typo never gets stored."""
    form = request.form
    found: list[Any] = []
    error = ""
    if request.method == "POST":
        url = form.get("url", "").strip()
        username = form.get("username", "").strip()
        password = form.get("password", "")
        if not url.startswith(("https://", "http://")) or not username or not password:
            error = _("Fill in the server address (starting with https://), the username and the app password.")
        else:
            creds = {"url": url, "username": username, "password": password}
            try:
                found = connector_for("caldav", creds).list_calendars()
            except Exception as exc:  # noqa: BLE001 - any failure is shown to the owner, without the password
                log.info("caldav test for owner %s failed: %s", g.owner_id, type(exc).__name__)
                error = _("Could not connect: %(why)s. Check the address, the username and the app password.",
                          why=_describe(exc))
            if not error and not found:
                error = _("Connected, but no calendars were found for this user at that address.")
            if not error and form.get("action") == "save":
                conn = save_connection("caldav", username, creds, found)
                flash(_("Calendar connected. Choose which calendars Reagenda watches."), "ok")
                _try_sync(conn)
                return redirect(url_for("connect.index") + f"#conn-{conn.id}")
    return render_template("connect/caldav.html", form=form, found=found, error=error), (400 if error else 200)


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def save_connection(provider: str, account: str, creds: dict[str, Any], found: list[Any]) -> CalendarConnection:
    """Store (or refresh, when the same account is reconnected) a connection and its calendars."""
    conn = db().scalar(select(CalendarConnection).where(CalendarConnection.owner_id == g.owner_id,
                                                        CalendarConnection.provider == provider,
                                                        CalendarConnection.account == account))
    if conn is None:
        conn = CalendarConnection(owner_id=g.owner_id, provider=provider, account=account, created_at=now())
        db().add(conn)
    conn.credentials = encrypt(creds)
    conn.status, conn.status_detail = "ok", ""
    db().flush()
    existing = {c.external_id: c for c in db().scalars(select(Calendar).where(Calendar.connection_id == conn.id))}
    any_bookings = any(c.receives_bookings for c in existing.values())
    for info in found:
        cal = existing.get(info.external_id)
        if cal is None:
            cal = Calendar(connection_id=conn.id, external_id=info.external_id, name=info.name or info.external_id,
                           watched=not getattr(info, "read_only", False) or getattr(info, "primary", False),
                           receives_bookings=False)
            db().add(cal)
        else:
            cal.name = info.name or cal.name
    db().flush()
    if not any_bookings:
        first = next((c for c in db().scalars(select(Calendar).where(Calendar.connection_id == conn.id,
                                                                     Calendar.watched.is_(True)))), None)
        if first is not None:
            first.receives_bookings = True
    db().commit()
    return conn


def _try_sync(conn: CalendarConnection) -> None:
    try:
        line = sync_connection(conn)
        if line:
            flash(line, "ok")
    except ImportError:
        log.info("workflows.sync is not available yet; the dispatcher will sync later")
    except Exception as exc:  # noqa: BLE001
        log.warning("sync after connect failed for connection %s: %s", conn.id, type(exc).__name__)
        flash(_("Connected, but the first sync failed: %(why)s. It will be retried.", why=_describe(exc)), "warn")


@bp.post("/<int:conn_id>/calendars")
@login_required
def choose(conn_id: int):  # type: ignore[no-untyped-def]
    conn: CalendarConnection = owned(CalendarConnection, conn_id)
    booking = request.form.get("bookings", "")
    all_owner_cals = list(db().scalars(select(Calendar).join(CalendarConnection).where(
        CalendarConnection.owner_id == g.owner_id)))
    mine = {str(c.id) for c in all_owner_cals}
    if booking and booking not in mine:
        abort(404)
    for cal in all_owner_cals:
        if cal.connection_id == conn.id:
            cal.watched = bool(request.form.get(f"watch_{cal.id}"))
        if booking:
            cal.receives_bookings = str(cal.id) == booking
    db().commit()
    flash(_("Calendar choices saved."), "ok")
    return redirect(url_for("connect.index") + f"#conn-{conn.id}")


@bp.post("/<int:conn_id>/sync")
@login_required
def sync_now(conn_id: int):  # type: ignore[no-untyped-def]
    conn: CalendarConnection = owned(CalendarConnection, conn_id)
    _try_sync(conn)
    return redirect(url_for("dashboard.home"))


@bp.post("/<int:conn_id>/disconnect")
@login_required
def disconnect(conn_id: int):  # type: ignore[no-untyped-def]
    """Revoke at the provider when it supports it (best effort), then delete the tokens and the calendars."""
    conn: CalendarConnection = owned(CalendarConnection, conn_id)
    try:
        creds = decrypt(conn.credentials) if conn.credentials else {}
        if creds:
            oauth.revoke(conn.provider, creds)
    except Exception as exc:  # noqa: BLE001 - a dead token cannot be revoked; deleting it is what matters
        log.info("revoke for connection %s failed (deleting anyway): %s", conn.id, type(exc).__name__)
    db().delete(conn)
    db().commit()
    flash(_("Disconnected. The stored access was revoked and deleted."), "ok")
    return redirect(url_for("connect.index"))


# ------------------------------------------------------------------------------------------ OAuth


@bp.get("/<provider>/start")
@login_required
def oauth_start(provider: str):  # type: ignore[no-untyped-def]
    if provider not in ("google", "microsoft"):
        abort(404)
    redirect_uri = get_context().settings.base_url + url_for("connect.oauth_callback", provider=provider)
    url, pending = oauth.start(provider, redirect_uri)
    session["oauth"] = {"provider": provider, **pending}
    return redirect(url)


OAUTH_POST_TTL_S = 600


@bp.route("/<provider>/callback", methods=["GET", "POST"])
def oauth_callback(provider: str):  # type: ignore[no-untyped-def]
    """Google comes back with a GET; Microsoft with a form POST (``response_mode=form_post``), which a SameSite=Lax
    session cookie does not accompany. That POST only parks its fields in Redis under a digest of the state and
    redirects to this URL with a GET, where the session is present and the state is compared with the one this
    browser started; so a flow can only be finished by the browser (and the owner) that began it."""
    if provider not in ("google", "microsoft"):
        abort(404)
    r = get_context().redis
    if request.method == "POST":
        state = request.form.get("state", "")
        if not state:
            abort(400)
        r.set(_parked(state), json.dumps(request.form.to_dict()), ex=OAUTH_POST_TTL_S)
        return redirect(url_for("connect.oauth_callback", provider=provider, state=state, parked=1), code=303)
    if g.owner is None:
        return redirect(url_for("auth.login"))
    args = request.args.to_dict()
    if args.get("parked"):
        pipe = r.pipeline()  # GET + DEL in one transaction (GETDEL needs Redis 6.2; the embedded one is older)
        pipe.get(_parked(args.get("state", "")))
        pipe.delete(_parked(args.get("state", "")))
        raw = pipe.execute()[0]
        args = json.loads(raw) if raw else {}
    pending = session.pop("oauth", None)
    if not pending or pending.get("provider") != provider or not args.get("state") \
            or not hmac.compare_digest(str(args.get("state")), str(pending.get("state"))):
        flash(_("The sign-in with the calendar provider could not be verified (the request expired or did not "
                "start here). Try connecting again."), "error")
        return redirect(url_for("connect.index"))
    if args.get("error"):
        flash(_("The provider did not grant access (%(why)s). Nothing was connected.",
                why=str(args.get("error", ""))[:100]), "error")
        return redirect(url_for("connect.index"))
    redirect_uri = get_context().settings.base_url + url_for("connect.oauth_callback", provider=provider)
    key = "google" if provider == "google" else "outlook"
    try:
        account, creds = oauth.finish(provider, pending, args, redirect_uri)
        found = connector_for(key, creds).list_calendars()
    except Exception as exc:  # noqa: BLE001
        log.warning("oauth callback for %s failed: %s", provider, type(exc).__name__)
        flash(_("Could not finish connecting: %(why)s. Try again.", why=_describe(exc)), "error")
        return redirect(url_for("connect.index"))
    if not account:
        account = next((c.external_id for c in found if getattr(c, "primary", False)), "") or provider
    conn = save_connection(key, account, creds, found)
    flash(_("Calendar connected. Choose which calendars Reagenda watches."), "ok")
    _try_sync(conn)
    return redirect(url_for("connect.index") + f"#conn-{conn.id}")


def _parked(state: str) -> str:
    return "rg:oauth-post:" + hashlib.sha256(state.encode()).hexdigest()


csrf.exempt(oauth_callback)  # Microsoft's form_post; the OAuth state (checked above) is this view's CSRF check


# ------------------------------------------------------------------------------------------ demo


@bp.post("/demo")
@login_required
def demo():  # type: ignore[no-untyped-def]
    from web import demo as demo_mod

    try:
        summary = demo_mod.connect_demo_calendar(db(), g.owner, get_context())
    except Exception as exc:  # noqa: BLE001
        log.warning("demo failed for owner %s: %s", g.owner_id, exc)
        flash(_("The demo calendar could not start: %(why)s.", why=_describe(exc)), "error")
        return redirect(url_for("dashboard.home"))
    flash(summary, "ok")
    return redirect(url_for("dashboard.home"))
