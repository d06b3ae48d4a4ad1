"""Security of the owner pages: headers on every response, CSRF on every form, and object access always scoped to
the signed-in owner (every route that takes an id is tried with another owner's ids)."""
from __future__ import annotations

from datetime import timedelta

from store.models import Calendar, CalendarConnection, LedgerEntry, Message, Reply
from tests.factories import make_appointment, make_owner
from tests.web_fixtures import csrf_from, post_form, sign_up, web_app, web_client  # noqa: F401
from web.security import CSP

OWNER_BLUEPRINTS = ("dashboard", "settings_pages", "connect", "insights", "auth")


def test_security_headers_on_pages_errors_and_static(web_client):  # type: ignore[no-untyped-def]
    for path in ("/login", "/no-such-page", "/static/app.css"):
        r = web_client.get(path)
        r.close()  # static files are streamed from an open file
        assert r.headers["Content-Security-Policy"] == CSP, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin"
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    sign_up(web_client, "ana@example.com")
    assert web_client.get("/").headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(web_client):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    for path in ("/", "/clients", "/replies", "/outbox", "/ledger", "/insights", "/calendars", "/calendars/caldav",
                 "/settings", "/settings/messages"):
        html = web_client.get(path).get_data(as_text=True)
        assert "<script" not in html and "style=" not in html and "onclick" not in html.lower(), path


def test_every_form_post_without_a_valid_token_is_refused(web_client, web_app):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    token = csrf_from(web_client.get("/settings").get_data(as_text=True))
    r = web_client.post("/settings", data={"section": "business", "business_name": "Hacked", "timezone": "UTC",
                                           "work_start": "09:00", "work_end": "18:00"})
    assert r.status_code == 400 and "form expired" in r.get_data(as_text=True)
    r = web_client.post("/settings", data={"csrf_token": token[:-2] + "xx", "section": "business"})
    assert r.status_code == 400
    assert web_client.post("/logout").status_code == 400
    assert web_client.get("/").status_code == 200, "still signed in: sign-out also needs the token"
    # Every POST route of the owner areas goes through the check (none is exempt by accident).
    for rule in web_app.url_map.iter_rules():
        if rule.endpoint == "connect.oauth_callback":
            continue  # Microsoft's form_post lands here; the OAuth state is its check (tests/test_web_oauth.py)
        if "POST" in (rule.methods or set()) and rule.endpoint.split(".")[0] in OWNER_BLUEPRINTS:
            url = rule.rule.replace("<int:", "<").replace("<provider>", "google")
            for arg in rule.arguments:
                url = url.replace(f"<{arg}>", "1")
            assert web_client.post(url, data={}).status_code == 400, rule.rule
    # Login and sign-up forms are protected too (login CSRF).
    other = web_app.test_client()
    assert other.post("/login", data={"email": "ana@example.com", "password": "x"}).status_code == 400


def _other_owner_objects(stack) -> dict[str, object]:  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        bea = make_owner(s, now, email="bea@example.com")
        appt = make_appointment(s, bea, now, now + timedelta(hours=1))
        conn = CalendarConnection(owner_id=bea.id, provider="caldav", account="bea", credentials="", created_at=now)
        s.add(conn)
        s.flush()
        cal = Calendar(connection_id=conn.id, external_id="/bea/work/", name="Work")
        msg = Message(owner_id=bea.id, client_id=appt.client_id, appointment_id=appt.id, kind="reminder",
                      channel="email", recipient="x@example.com", locale="es", subject="Secret of Bea",
                      idempotency_key="bea-1", created_at=now)
        reply = Reply(owner_id=bea.id, client_id=appt.client_id, appointment_id=appt.id, channel="email",
                      text="Secret of Bea", received_at=now)
        entry = LedgerEntry(owner_id=bea.id, client_id=appt.client_id, appointment_id=appt.id, kind="fee",
                            amount_cents=3000, invoice_number="BEA-0001", created_at=now)
        s.add_all([cal, msg, reply, entry])
        s.flush()
        return {"appt_id": appt.id, "client_id": appt.client_id, "conn_id": conn.id, "message_id": msg.id,
                "reply_id": reply.id, "number": "BEA-0001", "calendar_id": cal.id}


def test_another_owners_ids_answer_404_on_every_route(web_client, web_app, stack):  # type: ignore[no-untyped-def]
    ids = _other_owner_objects(stack)
    sign_up(web_client, "ana@example.com")
    token = csrf_from(web_client.get("/").get_data(as_text=True))
    tried = 0
    for rule in web_app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in OWNER_BLUEPRINTS or not rule.arguments:
            continue
        if rule.arguments <= {"provider", "token"}:
            continue  # no object id: OAuth provider names and signed reset tokens
        missing = rule.arguments - set(ids)
        assert not missing, f"{rule.rule}: add an object for {missing} to this test"
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<int:{arg}>", str(ids[arg])).replace(f"<{arg}>", str(ids[arg]))
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            data = {"csrf_token": token, "action": "arrived", "reason": "x", "bookings": str(ids["calendar_id"]),
                    f"watch_{ids['calendar_id']}": "1"}
            r = web_client.open(url, method=method, data=data if method == "POST" else None)
            assert r.status_code == 404, f"{method} {url} answered {r.status_code}"
            assert "Secret of Bea" not in r.get_data(as_text=True)
            tried += 1
    assert tried >= 10
    # Listing pages never show another owner's rows either.
    for path in ("/", "/clients", "/replies", "/outbox", "/ledger", "/ledger.csv", "/calendars"):
        body = web_client.get(path).get_data(as_text=True)
        assert "Secret of Bea" not in body and "marta@example.com" not in body and "BEA-0001" not in body, path


def test_choosing_another_owners_calendar_for_bookings_is_refused(web_client, stack):  # type: ignore[no-untyped-def]
    ids = _other_owner_objects(stack)
    sign_up(web_client, "ana@example.com")
    now = stack.clock.now()
    with stack.session() as s:
        from sqlalchemy import select

        from store.models import Owner

        ana = s.scalar(select(Owner).where(Owner.email == "ana@example.com"))
        conn = CalendarConnection(owner_id=ana.id, provider="caldav", account="ana", credentials="", created_at=now)
        s.add(conn)
        s.flush()
        conn_id = conn.id
    r = post_form(web_client, "/calendars", f"/calendars/{conn_id}/calendars", bookings=str(ids["calendar_id"]))
    assert r.status_code == 404
