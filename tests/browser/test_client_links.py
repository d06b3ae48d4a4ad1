"""As a client, in a real browser: confirm from a link, then cancel another appointment with a reason and a
preferred channel. The pages are in the client's language, carry no script, and GET never acts."""
from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from channels.links import make_link
from store.models import Appointment, Reply
from tests.browser.conftest import shoot
from tests.factories import make_appointment, make_owner


def _setup(stack):  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, email="lumen@studio.example")
        first = make_appointment(s, owner, now, now + timedelta(days=2), client_email="marta@example.com")
        second = make_appointment(s, owner, now, now + timedelta(days=9), client_email="marta@example.com")
        return first.id, second.id, first.client_id


def test_client_confirms_then_cancels_with_a_reason(page, live):  # type: ignore[no-untyped-def]
    stack, _server = live
    first, second, client_id = _setup(stack)
    confirm = make_link(stack.settings, "confirm", client_id=client_id, appointment_id=first)
    page.goto(confirm)
    expect(page.get_by_role("heading", name="¿Confirmas tu cita?")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("navigation")).to_have_count(0)  # no owner navigation on client pages
    assert "<script" not in page.content()
    shoot(page, "20-client-confirm")
    with stack.session() as s:
        assert s.get(Appointment, first).confirmation == "pending", "opening the link (GET) must not confirm"
    page.get_by_role("button", name="Confirmar").click()
    expect(page.get_by_role("heading", name="¡Cita confirmada!")).to_be_visible()
    with stack.session() as s:
        assert s.get(Appointment, first).confirmation == "confirmed"

    cancel = make_link(stack.settings, "cancel", client_id=client_id, appointment_id=second)
    page.goto(cancel)
    page.get_by_label("¿Nos cuentas por qué? (opcional)").select_option("price")
    page.get_by_label("¿Cómo prefieres que te contactemos?").select_option("whatsapp")
    shoot(page, "21-client-cancel")
    page.get_by_role("button", name="Cancelar la cita").click()
    expect(page.get_by_role("heading", name="Tu cita está cancelada")).to_be_visible()
    shoot(page, "22-client-cancelled")
    with stack.session() as s:
        assert s.get(Appointment, second).status == "cancelled"
        reasons = [r.text for r in s.scalars(select(Reply).where(Reply.intent == "reason"))]
        assert any("price" in r and "whatsapp" in r for r in reasons), reasons
