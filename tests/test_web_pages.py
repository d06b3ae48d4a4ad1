"""The owner pages with data in them: the policy form (validation, snapshot on new appointments), the message-text
preview, one-click attendance and waiver, the ledger CSV (formula-safe) and the printable invoice."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select

from store.models import Appointment, LedgerEntry, Owner
from tests.factories import make_appointment
from tests.web_fixtures import post_form, sign_up, web_app, web_client  # noqa: F401


def _owner(stack, email="ana@example.com") -> Owner:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        owner = s.scalar(select(Owner).where(Owner.email == email))
        s.expunge(owner)
        return owner


def _policy_form(**overrides):  # type: ignore[no-untyped-def]
    form = {"section": "policy", "window_hours": "48", "deposit_cents": "0", "fee_cents": "0", "currency": "EUR",
            "grace_days": "3", "reminder_hours": "48, 2", "confirm_nudge_hours": "24", "no_show_check_minutes": "5",
            "no_show_wait_minutes": "15", "no_show_mode": "ask", "no_show_followup_days": "2",
            "followup_days": "7", "ghost_after_days": "3", "ghost_wait_days": "7", "ultimatum_days": "7",
            "business_cycle_months": "3", "offer_text": "", "quiet_start": "21:00", "quiet_end": "08:00",
            "waiver_reasons": "Emergencia\nPrimera vez"}
    form.update(overrides)
    return form


def test_policy_form_validates_and_new_appointments_snapshot_it(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    r = post_form(web_client, "/settings", **_policy_form(reminder_hours="soon", quiet_start="25:00",
                                                           no_show_wait_minutes="2"))
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "for example 48, 2" in body and "like 21:00" in body and 'aria-invalid="true"' in body
    assert _owner(stack).policy == {}, "nothing is saved while a value is wrong"
    r = post_form(web_client, "/settings", **_policy_form(reminder_hours="72, 24, 2", fee_cents="30,50"))
    assert r.status_code == 302
    owner = _owner(stack)
    assert owner.policy["reminder_hours"] == [72, 24, 2] and owner.policy["fee_cents"] == 3050
    assert owner.preferences["waiver_reasons"] == ["Emergencia", "Primera vez"]
    now = stack.clock.now()
    with stack.session() as s:
        appt = make_appointment(s, s.get(Owner, owner.id), now, now + timedelta(days=5))
        assert appt.policy["reminder_hours"] == [72, 24, 2]
        appt_id = appt.id
    page = web_client.get(f"/appointments/{appt_id}").get_data(as_text=True)
    assert "Reminder 72 h before" in page and "€30.50" in page


def test_message_text_preview_renders_in_a_sandbox(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    page = web_client.get("/settings/messages?kind=reminder&lang_text=es").get_data(as_text=True)
    assert "Recordatorio" in page  # the default Spanish text, rendered
    r = post_form(web_client, "/settings/messages", kind="reminder", lang_text="es", action="preview",
                  text="Subject: Hola {{ client_name }}\n\n{{ when }}\n")
    assert 'id="preview-subject">Hola Marta<' in r.get_data(as_text=True)
    r = post_form(web_client, "/settings/messages", kind="reminder", lang_text="es", action="save",
                  text="Subject: x {{ ''.__class__.__mro__ }}\n")
    assert r.status_code == 400 and "has a problem" in r.get_data(as_text=True)
    assert "texts" not in _owner(stack).preferences
    post_form(web_client, "/settings/messages", kind="reminder", lang_text="es", action="save",
              text="Subject: Hola {{ client_name }}\n\nHasta pronto.\n")
    assert _owner(stack).preferences["texts"]["es"]["reminder"].startswith("Subject: Hola")


def test_attendance_buttons_and_waiver_then_csv_and_invoice(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    post_form(web_client, "/settings", **_policy_form(fee_cents="40"))
    owner = _owner(stack)
    now = stack.clock.now()
    with stack.session() as s:
        appt = make_appointment(s, s.get(Owner, owner.id), now, now + timedelta(minutes=30),
                                client_email="=cmd@example.com")
        appt_id, client_id = appt.id, appt.client_id
    stack.clock.advance(timedelta(minutes=50))
    home = web_client.get("/").get_data(as_text=True)
    assert f'action="/appointments/{appt_id}/attendance"' in home
    post_form(web_client, "/", f"/appointments/{appt_id}/attendance", action="no_show")
    with stack.session() as s:
        assert s.get(Appointment, appt_id).attendance == "no_show"
        fee = s.scalar(select(LedgerEntry).where(LedgerEntry.kind == "fee"))
        assert fee is not None and fee.amount_cents == 4000
    post_form(web_client, f"/appointments/{appt_id}", f"/appointments/{appt_id}/waive", reason="Emergencia")
    with stack.session() as s:
        waiver = s.scalar(select(LedgerEntry).where(LedgerEntry.kind == "waiver"))
        assert waiver.amount_cents == 4000 and waiver.reason == "Emergencia"
        s.add(LedgerEntry(owner_id=owner.id, client_id=client_id, kind="invoice", amount_cents=1500,
                          invoice_number="2026-0001", reason="closing the file", created_at=stack.clock.now()))
    r = web_client.get("/ledger.csv")
    assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert {row["kind"] for row in rows} == {"fee", "waiver", "invoice"}
    assert all(row["client_email"] == "'=cmd@example.com" for row in rows), "formula injection neutralised"
    page = web_client.get("/invoices/2026-0001").get_data(as_text=True)
    assert "Invoice 2026-0001" in page and "€15.00" in page and "Estudio Lumen" in page
    assert web_client.get("/invoices/2026-9999").status_code == 404


def test_client_history_flags_a_repeat_no_show_and_the_reconnect_banner(web_client, stack):  # type: ignore[no-untyped-def]
    from store.models import CalendarConnection
    from workflows.noshow import mark_no_show

    sign_up(web_client, "ana@example.com")
    owner = _owner(stack)
    now = stack.clock.now()
    with stack.session() as s:
        me = s.get(Owner, owner.id)
        for days in (1, 2):
            appt = make_appointment(s, me, now, now + timedelta(days=days), uid=f"evt-{days}")
            mark_no_show(s, appt, now + timedelta(days=days, minutes=20))
        client_id = appt.client_id
        s.add(CalendarConnection(owner_id=owner.id, provider="google", account="ana@gmail.example",
                                 status="needs_reconnect", status_detail="Google revoked the access",
                                 created_at=now))
    page = web_client.get("/clients").get_data(as_text=True)
    assert "Flagged" in page and "0 %" in page  # two no-shows: reliability 0
    page = web_client.get(f"/clients/{client_id}").get_data(as_text=True)
    assert "consider a stricter policy" in page
    for path in ("/", "/clients", "/settings"):
        body = web_client.get(path).get_data(as_text=True)
        assert 'role="alert"' in body and "Google revoked the access" in body, path


def test_insights_charts_are_server_side_svg_from_the_data(web_client, stack):  # type: ignore[no-untyped-def]
    from store.models import Reply

    sign_up(web_client, "ana@example.com")
    owner = _owner(stack)
    now = stack.clock.now()
    with stack.session() as s:
        me = s.get(Owner, owner.id)
        kept = make_appointment(s, me, now, now - timedelta(days=1), uid="kept")
        kept.attendance = "arrived"
        gone = make_appointment(s, me, now, now - timedelta(hours=2), uid="gone")
        gone.status, gone.late_cancel = "cancelled", True
        s.add(Reply(owner_id=owner.id, client_id=gone.client_id, appointment_id=gone.id, channel="link",
                    text="reason: price; contact: whatsapp", intent="reason", received_at=now))
        s.add(LedgerEntry(owner_id=owner.id, client_id=gone.client_id, appointment_id=gone.id, kind="fee",
                          amount_cents=2500, created_at=now))
    body = web_client.get("/insights").get_data(as_text=True)
    assert body.count("<svg") == 4 and "<script" not in body
    assert "Price: 1" in body  # the chart's description, read by screen readers
    assert "Late-cancellation rate: " in body and "Mar 26 50%" in body  # 1 of the 2 appointments in March 2026
    assert "Charged: " in body and "Mar 26 25" in body


def test_not_yet_then_ghosting_states_on_the_dashboard(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    owner = _owner(stack)
    now = stack.clock.now()
    with stack.session() as s:
        appt = make_appointment(s, s.get(Owner, owner.id), now, now + timedelta(minutes=20))
        later = make_appointment(s, s.get(Owner, owner.id), now, now + timedelta(days=4), uid="later")
        appt_id, later_id, client_id = appt.id, later.id, appt.client_id
    stack.clock.advance(timedelta(minutes=26))
    post_form(web_client, "/", f"/appointments/{appt_id}/attendance", action="not_yet")
    with stack.session() as s:
        assert s.get(Appointment, appt_id).attendance == "waiting"
    home = web_client.get("/").get_data(as_text=True)
    assert 'data-state="waiting"' in home and "Not yet" not in home.split(f'data-appointment="{appt_id}"')[1][:1500]
    post_form(web_client, f"/clients/{client_id}", f"/clients/{client_id}/ghosting")
    page = web_client.get(f"/appointments/{later_id}").get_data(as_text=True)
    assert 'data-state="ghosting_1"' in page and "Ghosting step 1: a check-in" in page
