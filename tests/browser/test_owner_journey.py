"""The owner's journey in a real browser: sign up, connect a CalDAV calendar on a real Radicale and see its
appointments, change the policy and see a new appointment's timeline change, click Arrived / No-show, read the
outbox, ledger and insights, and switch the UI to Spanish. Screenshots of each page land in var/screenshots/."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.radicale_server import RadicaleServer

OWNER = "ana@studio.example"
PASSWORD = "a long enough password"


def ics(uid: str, start: datetime, minutes: int, summary: str, attendee: str, name: str) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//reagenda tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{start:{fmt}}\r\nDTSTART:{start:{fmt}}\r\n"
        f"DTEND:{start + timedelta(minutes=minutes):{fmt}}\r\nSUMMARY:{summary}\r\n"
        "DESCRIPTION:Join: https://meet.google.com/abc-defg-hij\r\n"
        f"ORGANIZER:mailto:{OWNER}\r\nATTENDEE;CN={name};PARTSTAT=ACCEPTED:mailto:{attendee}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer(username="ana") as server:
        yield server


@pytest.fixture(scope="module")
def calendar(radicale, live):  # type: ignore[no-untyped-def]
    stack, _server = live
    now = stack.clock.now()
    url = radicale.make_calendar("consulta", display_name="Consulta")
    radicale.put(url, "e1.ics", ics("e1", now + timedelta(minutes=30), 60, "Sesión", "marta@example.com", "Marta Ruiz"))
    radicale.put(url, "e2.ics", ics("e2", now + timedelta(minutes=60), 60, "Sesión", "luis@example.com", "Luis Pardo"))
    radicale.put(url, "e3.ics", ics("e3", now + timedelta(days=3), 60, "Coaching", "sofia@example.com", "Sofía León"))
    radicale.put(url, "busy.ics", ics("busy", now + timedelta(days=1), 60, "Dentist", OWNER, "Ana"))
    return url


def _card(page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("li.appt", has_text=name)


def test_sign_up(page, live):  # type: ignore[no-untyped-def]
    _stack, server = live
    page.goto(server.url + "/signup?lang=en")
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Business name").fill("Estudio Lumen")
    page.get_by_label("Time zone").select_option("Europe/Madrid")
    page.get_by_role("combobox", name="Language").select_option("en")
    shoot(page, "01-sign-up")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="No appointments yet")).to_be_visible()
    expect(page.get_by_role("button", name="Try the demo calendar")).to_be_visible()
    shoot(page, "02-dashboard-empty")


def test_connect_caldav_and_see_its_appointments(page, live, radicale, calendar):  # type: ignore[no-untyped-def]
    _stack, server = live
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendars").click()
    page.get_by_role("link", name="Connect a CalDAV calendar").click()
    page.get_by_label("Server address").fill(radicale.url)
    page.get_by_label("Username").fill(radicale.username)
    page.get_by_label("App password").fill("wrong password")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#caldav-error")).to_contain_text("Could not connect")
    expect(page.get_by_role("button", name="Save and connect")).to_have_count(0)
    page.get_by_label("App password").fill(radicale.password)
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#found-calendars")).to_contain_text("Consulta")
    shoot(page, "03-connect-caldav")
    page.get_by_role("button", name="Save and connect").click()
    expect(page.locator(".notice-ok").nth(1)).to_contain_text("Synced: 3 new")
    expect(page.get_by_role("row", name=re.compile("Consulta"))).to_be_visible()
    shoot(page, "04-calendars")
    assert radicale.password not in page.content()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Appointments").click()
    expect(_card(page, "Marta Ruiz")).to_be_visible()
    expect(_card(page, "Luis Pardo")).to_be_visible()
    expect(_card(page, "Sofía León")).to_be_visible()
    expect(page.locator("li.appt", has_text="Dentist")).to_have_count(0)  # owner-only event: busy time
    expect(_card(page, "Marta Ruiz").locator("[data-state]")).to_have_text("Unconfirmed")
    shoot(page, "05-dashboard")


def test_policy_change_changes_the_timeline_of_new_appointments(page, live, radicale, calendar):  # type: ignore[no-untyped-def]
    stack, server = live
    _card(page, "Sofía León").get_by_role("link", name="Sofía León").click()
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("Reminder 48 h before")
    expect(timeline).not_to_contain_text("Reminder 72 h before")
    sofia_url = page.url

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_label("Reminders (hours before, comma-separated)").fill("72, 24, 2")
    page.locator("#f-deposit_cents").fill("25")
    shoot(page, "06-settings")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator(".notice-ok")).to_contain_text("Saved")
    expect(page.get_by_label("Reminders (hours before, comma-separated)")).to_have_value("72, 24, 2")

    radicale.put(calendar, "e4.ics", ics("e4", stack.clock.now() + timedelta(days=5), 60, "Coaching",
                                         "pablo@example.com", "Pablo Gil"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendars").click()
    page.get_by_role("button", name="Sync now").click()
    _card(page, "Pablo Gil").get_by_role("link", name="Pablo Gil").click()
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("Reminder 72 h before")
    expect(timeline).to_contain_text("Reminder 24 h before")
    expect(page.locator("body")).to_contain_text("Deposit")
    shoot(page, "07-appointment-timeline")
    page.goto(sofia_url)  # booked before the change: keeps the policy it was booked under
    expect(page.locator("ol.timeline")).not_to_contain_text("Reminder 72 h before")


def test_click_arrived_and_no_show(page, live):  # type: ignore[no-untyped-def]
    stack, server = live
    stack.clock.advance(timedelta(minutes=40))  # Marta's session started 10 minutes ago
    page.goto(server.url + "/")
    marta = _card(page, "Marta Ruiz")
    marta.get_by_role("button", name="Arrived").click()
    expect(page.locator(".notice-ok")).to_contain_text("Marked as arrived")
    expect(_card(page, "Marta Ruiz").locator("[data-state]")).to_have_text("Arrived")
    expect(_card(page, "Marta Ruiz").get_by_role("button", name="Arrived")).to_have_count(0)
    stack.clock.advance(timedelta(minutes=35))  # Luis is 15 minutes late
    page.goto(server.url + "/")
    _card(page, "Luis Pardo").get_by_role("button", name="No-show").click()
    expect(page.locator(".notice-ok")).to_contain_text("no-show")
    expect(_card(page, "Luis Pardo").locator("[data-state]")).to_have_text("No-show")
    shoot(page, "08-dashboard-states")
    _card(page, "Luis Pardo").get_by_role("link", name="Luis Pardo").click()
    expect(page.locator("ol.timeline")).to_contain_text("We waited for you")
    shoot(page, "09-appointment-no-show")


def test_outbox_ledger_clients_insights(page, live):  # type: ignore[no-untyped-def]
    stack, server = live
    stack.run_due()  # the real dispatcher and an RQ worker send what is due now
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 3
    shoot(page, "10-outbox")
    rows.first.get_by_role("link").click()
    expect(page.locator("pre.msg")).not_to_be_empty()
    shoot(page, "11-message")
    for link, name in (("Clients", "12-clients"), ("Ledger", "13-ledger"), ("Insights", "14-insights"),
                       ("Replies", "15-replies")):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(link)
        shoot(page, name)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name=re.compile("Message texts")).click()
    page.get_by_label("Text").fill("Subject: Hola {{ client_name }}\n\nNos vemos el {{ when }}.\n")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-subject")).to_have_text("Hola Martha")
    shoot(page, "16-message-texts")


def test_spanish_ui(page, live):  # type: ignore[no-untyped-def]
    _stack, server = live
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("combobox", name="Language").select_option("es")
    page.get_by_role("button", name="Save business").click()
    expect(page.get_by_role("heading", name="Ajustes", exact=True)).to_be_visible()
    page.get_by_role("navigation", name="Principal").get_by_role("link", name="Citas").click()
    expect(page.get_by_role("heading", name="Citas", level=1)).to_be_visible()
    expect(_card(page, "Marta Ruiz").locator("[data-state]")).to_have_text("Llegó")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    shoot(page, "17-dashboard-es")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, the buttons still reachable
    expect(_card(page, "Sofía León")).to_be_visible()
    shoot(page, "18-dashboard-phone")
    page.set_viewport_size({"width": 1100, "height": 900})


def test_no_csp_violations(page):  # type: ignore[no-untyped-def]
    assert [e for e in page.csp_errors if "Content Security Policy" in e] == []
