"""A new client books a slot in Chromium from the owner's public page (Spanish), then moves it from the reschedule
page (English): the event is created and moved in a real Radicale calendar. Screenshots in var/screenshots/."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.booking_helpers import BookingOwner, busy_event, make_booking_owner
from tests.browser.conftest import shoot
from tests.radicale_server import RadicaleServer

MADRID = ZoneInfo("Europe/Madrid")


def _iso(day: int, hour: int) -> str:
    return datetime(2026, 3, day, hour, tzinfo=MADRID).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer(username="ana") as server:
        yield server


@pytest.fixture(scope="module")
def owner(live, radicale) -> BookingOwner:  # type: ignore[no-untyped-def]
    stack, _server = live
    with stack.session() as s:
        bo = make_booking_owner(s, radicale, stack.settings.secret_key, stack.clock.now(), slug="lumen-browser",
                                policy={"deposit_cents": 2500})
    start = datetime(2026, 3, 3, 9, tzinfo=MADRID).astimezone(timezone.utc)
    radicale.put(bo.calendar_urls["personal"], "gym.ics", busy_event("gym", start, start.replace(hour=start.hour + 1)))
    return bo


def test_a_new_client_books_then_moves_a_slot(page, live, owner, radicale):  # type: ignore[no-untyped-def]
    stack, server = live
    page.goto(f"{server.url}/book/{owner.slug}/sesion?lang=es")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Reserva tu cita")
    expect(page.get_by_text("martes, 3 de marzo de 2026")).to_be_visible()
    assert page.locator(f'input[value="{_iso(3, 9)}"]').count() == 0  # busy in the personal calendar
    page.locator(f'input[value="{_iso(3, 10)}"]').check()
    page.get_by_label("Nombre").fill("Marta Ruiz")
    page.get_by_label("Correo electrónico").fill("marta@example.com")
    page.get_by_label("Teléfono").fill("+34 600 111 222")
    page.get_by_label("Prefiero que me avisen por").select_option("whatsapp")
    shoot(page, "booking-form-es")
    page.get_by_role("button", name="Reservar").click()
    expect(page.locator("#notice")).to_contain_text("¡Reservado!")
    expect(page.locator("#current-when")).to_contain_text("martes, 3 de marzo de 2026, 10:00")
    expect(page.locator("#policy")).to_contain_text("25,00")
    shoot(page, "booking-done-es")
    events = owner.events(radicale, start=stack.clock.now())
    assert [e.starts_at.isoformat() for e in events] == ["2026-03-03T09:00:00+00:00"]

    page.goto(page.url.split("?")[0] + "?lang=en")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Change your appointment")
    page.locator(f'input[value="{_iso(4, 16)}"]').check()
    page.get_by_role("button", name="Move to this time").click()
    expect(page.locator("#notice")).to_contain_text("Moved!")
    expect(page.locator("#current-when")).to_contain_text("Wednesday, March 4, 2026")
    shoot(page, "reschedule-done-en")
    events = owner.events(radicale, start=stack.clock.now())
    assert [e.starts_at.isoformat() for e in events] == ["2026-03-04T15:00:00+00:00"]
    assert page.csp_errors == []
