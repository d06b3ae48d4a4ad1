"""Abuse: one owner reaching another owner's data through every route that takes an id.

The routes are enumerated from ``app.url_map`` rather than listed by hand, so a new route that takes an id and
is not covered here fails this test until it is: the test knows which object each URL argument names. Signed in
as owner B, every such URL filled with owner A's ids must answer 403 or 404, show none of A's data, and change
nothing; signed in as A, the same GET pages answer 200 (so the ids are real, and B's refusal means something).
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.models import Appointment, CalendarConnection, Client, LedgerEntry, Message, Owner, Reply
from tests.factories import make_appointment
from tests.web_fixtures import csrf_from, sign_up

# Every URL argument that names an owner's object, and how to find owner A's one.
ID_ARGS = {"appt_id": "appointment", "client_id": "client", "conn_id": "connection", "message_id": "message",
           "reply_id": "reply", "number": "invoice"}
# Arguments that do not name an owner's object (public pages address things by slug or signed token).
NOT_IDS = {"filename", "token", "thread", "secret", "slug", "type_slug", "provider"}
SECRET_TEXT = "victim-client@example.com"


def _seed_victim(stack, owner_email: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = s.scalar(select(Owner).where(Owner.email == owner_email))
        appt = make_appointment(s, owner, now, now + timedelta(days=3), client_email=SECRET_TEXT, uid="victim-1")
        conn = CalendarConnection(owner_id=owner.id, provider="caldav", account="victim@dav.example", credentials="",
                                  status="ok", status_detail="", created_at=now)
        msg = Message(owner_id=owner.id, client_id=appt.client_id, appointment_id=appt.id, kind="reminder",
                      channel="email", recipient=SECRET_TEXT, locale="es", subject="Recordatorio secreto",
                      body_text="secret body", body_html="", idempotency_key="victim-msg-1", status="sent",
                      provider_id="", error="", created_at=now)
        reply = Reply(owner_id=owner.id, client_id=appt.client_id, appointment_id=appt.id, channel="email",
                      sender=SECRET_TEXT, subject="Re: cita", raw_text="no puedo", text="no puedo", intent="other",
                      auto_reply=False, needs_owner=True, received_at=now)
        invoice = LedgerEntry(owner_id=owner.id, client_id=appt.client_id, appointment_id=appt.id, kind="invoice",
                              amount_cents=5000, currency="EUR", reason="no-show", invoice_number="VICTIM-0001",
                              created_at=now)
        s.add_all([conn, msg, reply, invoice])
        s.flush()
        return {"appointment": appt.id, "client": appt.client_id, "connection": conn.id, "message": msg.id,
                "reply": reply.id, "invoice": invoice.invoice_number, "owner": owner.id}


def _snapshot(stack, ids) -> tuple:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        appt = s.get(Appointment, ids["appointment"])
        client = s.get(Client, ids["client"])
        conn = s.get(CalendarConnection, ids["connection"])
        reply = s.get(Reply, ids["reply"])
        entries = s.scalars(select(LedgerEntry.kind).where(LedgerEntry.owner_id == ids["owner"])).all()
        return (appt.status, appt.attendance, client.state, conn is not None and conn.status,
                reply.needs_owner, sorted(entries))


def _id_rules(app) -> list:  # type: ignore[no-untyped-def]
    rules = []
    for rule in app.url_map.iter_rules():
        args = set(rule.arguments)
        unknown = args - set(ID_ARGS) - NOT_IDS
        assert not unknown, (f"route {rule.rule} takes {unknown}: add it to ID_ARGS (an owner's object) or NOT_IDS "
                             "in tests/abuse/test_cross_owner.py")
        if args & set(ID_ARGS):
            rules.append(rule)
    return rules


def test_no_route_taking_an_id_lets_one_owner_reach_another(stack):  # type: ignore[no-untyped-def]
    from web import create_app

    app = create_app(stack.settings, context=stack.ctx)
    app.config.update(TESTING=True)
    victim, attacker = app.test_client(), app.test_client()
    sign_up(victim, "victim@example.com")
    sign_up(attacker, "attacker@example.com")
    ids = _seed_victim(stack, "victim@example.com")
    before = _snapshot(stack, ids)

    rules = _id_rules(app)
    assert len(rules) >= 5, "expected the dashboard's id routes"
    token = csrf_from(attacker.get("/settings").get_data(as_text=True))
    checked = []
    for rule in rules:
        values = {arg: ids[ID_ARGS[arg]] for arg in rule.arguments if arg in ID_ARGS}
        url = _build(app, rule, values)
        for method in sorted(rule.methods & {"GET", "POST"}):
            if method == "GET":
                r = attacker.get(url)
            else:
                r = attacker.post(url, data={"csrf_token": token, "reason": "x", "status": "no_show",
                                             "action": "no_show", "value": "no_show"})
            body = r.get_data(as_text=True)
            assert r.status_code in (403, 404), f"{method} {url} as another owner answered {r.status_code}"
            assert SECRET_TEXT not in body and "VICTIM-0001" not in body, f"{method} {url} leaked the data"
            checked.append(f"{method} {rule.rule}")
            if method == "GET":
                mine = victim.get(url)
                assert mine.status_code == 200, f"GET {url} as its owner answered {mine.status_code}"
    assert _snapshot(stack, ids) == before, "another owner's POSTs changed the data"
    assert len(checked) >= 8, checked


def _build(app, rule, values) -> str:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)
