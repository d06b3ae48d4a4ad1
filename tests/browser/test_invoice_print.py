"""The printable invoice: signed in through the form, the invoice page on screen and in print media (no navigation,
no buttons, just the invoice), and the ledger's CSV download."""
from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from werkzeug.security import generate_password_hash

from store.models import LedgerEntry
from tests.browser.conftest import shoot
from tests.factories import make_appointment, make_owner

PASSWORD = "invoice test password"


def test_invoice_prints_without_the_app_around_it(page, live):  # type: ignore[no-untyped-def]
    stack, server = live
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now, email="ledger@studio.example", locale="en")
        owner.password_hash = generate_password_hash(PASSWORD, method="scrypt:32768:8:1")
        appt = make_appointment(s, owner, now - timedelta(days=10), now - timedelta(days=9),
                                client_email="luis@example.com")
        appt.attendance = "no_show"
        s.add_all([
            LedgerEntry(owner_id=owner.id, client_id=appt.client_id, appointment_id=appt.id, kind="fee",
                        amount_cents=4000, reason="no-show", created_at=now - timedelta(days=9)),
            LedgerEntry(owner_id=owner.id, client_id=appt.client_id, kind="invoice", amount_cents=4000,
                        invoice_number="2026-0007", reason="closing the file", created_at=now),
        ])
    page.goto(server.url + "/login?lang=en")
    page.get_by_label("Email").fill("ledger@studio.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Ledger").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "reagenda-ledger.csv"
    page.get_by_role("link", name="2026-0007").first.click()
    expect(page.get_by_role("heading", name="Invoice 2026-0007")).to_be_visible()
    expect(page.locator("tfoot")).to_contain_text("€40.00")
    shoot(page, "19-invoice")
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.locator(".no-print")).to_be_hidden()
    shoot(page, "19-invoice-print")
    page.emulate_media(media="screen")
