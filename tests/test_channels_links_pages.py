"""The one-click link pages on a real app and database: GET shows, POST acts, twice is once, forged is refused."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from channels.base import OutgoingMessage
from channels.compose import mark_address_rejected, outgoing_for
from channels.links import make_link
from channels.threads import thread_token
from store.models import Appointment, Client, Message, Reply
from tests.factories import make_appointment, make_owner
from web import create_app


@pytest.fixture
def env(stack):  # type: ignore[no-untyped-def]
    now = stack.clock.now()
    with stack.session() as s:
        owner = make_owner(s, now)
        appt = make_appointment(s, owner, now, now + timedelta(days=3))
        ids = appt.id, appt.client_id
    return stack, create_app(stack.settings, context=stack.ctx).test_client(), ids


def _path(stack, action, client_id, appt_id):  # type: ignore[no-untyped-def]
    return make_link(stack.settings, action, client_id=client_id, appointment_id=appt_id).split("reagenda.test", 1)[1]


def _key(html: str) -> str:
    return re.search(r'name="key" value="([0-9a-f]+)"', html).group(1)


def _replies(stack) -> list[str]:  # type: ignore[no-untyped-def]
    with stack.session() as s:
        return [r.intent for r in s.scalars(select(Reply).order_by(Reply.id))]


def test_confirm_get_shows_post_acts_twice_is_once(env):  # type: ignore[no-untyped-def]
    stack, client, (appt_id, client_id) = env
    path = _path(stack, "confirm", client_id, appt_id)
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'lang="es"' in html and "¿Confirmas tu cita?" in html and "marzo" in html
    assert _replies(stack) == [], "a GET (a mail scanner) must not act"
    first = client.post(path, data={"key": _key(html)})
    second = client.post(path, data={"key": _key(html)})
    assert first.status_code == second.status_code == 200
    assert first.get_data(as_text=True) == second.get_data(as_text=True)
    assert "¡Cita confirmada!" in first.get_data(as_text=True)
    assert _replies(stack) == ["confirm"]
    with stack.session() as s:
        assert s.get(Appointment, appt_id).confirmation == "confirmed"


def test_post_without_the_page_key_is_refused(env):  # type: ignore[no-untyped-def]
    stack, client, (appt_id, client_id) = env
    response = client.post(_path(stack, "cancel", client_id, appt_id), data={"key": "0" * 32})
    assert response.status_code == 400 and _replies(stack) == []


def test_cancel_with_reason_and_contact(env):  # type: ignore[no-untyped-def]
    stack, client, (appt_id, client_id) = env
    path = _path(stack, "cancel", client_id, appt_id)
    key = _key(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"key": key, "reason": "emergency", "contact": "whatsapp"})
    assert "Tu cita está cancelada" in response.get_data(as_text=True)
    client.post(path, data={"key": key, "reason": "emergency", "contact": "whatsapp"})
    assert sorted(_replies(stack)) == ["cancel", "reason"]
    with stack.session() as s:
        assert s.get(Appointment, appt_id).status == "cancelled"
        reason = s.scalar(select(Reply).where(Reply.intent == "reason"))
        assert "emergency" in reason.text and "whatsapp" in reason.text


def test_owner_arrived_and_tampered_and_expired(env):  # type: ignore[no-untyped-def]
    stack, client, (appt_id, client_id) = env
    path = _path(stack, "arrived", client_id, appt_id)
    key = _key(client.get(path).get_data(as_text=True))
    assert "Marcado: ha llegado" in client.post(path, data={"key": key}).get_data(as_text=True)
    with stack.session() as s:
        assert s.get(Appointment, appt_id).attendance == "arrived"
    assert client.get(path[:-4] + "AAAA").status_code == 400
    other = _path(stack, "confirm", client_id + 1000, appt_id)
    assert client.get(other).status_code == 400  # a token for another client cannot reach this appointment
    stack.clock.advance(timedelta(days=400))
    assert client.get(path).status_code == 410


def test_one_click_unsubscribe_and_address_marking(env):  # type: ignore[no-untyped-def]
    stack, client, (appt_id, client_id) = env
    now = stack.clock.now()
    with stack.session() as s:
        msg = Message(owner_id=s.get(Client, client_id).owner_id, client_id=client_id, appointment_id=appt_id,
                      kind="confirm_request", channel="email", recipient="marta@example.com", locale="es",
                      subject="¿Confirmas?", body_text="Hola", idempotency_key="t-1", created_at=now)
        s.add(msg)
        s.flush()
        out = outgoing_for(stack.settings, s, msg)
        assert isinstance(out, OutgoingMessage) and out.unsubscribe_url.startswith("http://reagenda.test/l/")
        assert out.attachments and b"METHOD:REQUEST" in out.attachments[0].data
        msg_id = msg.id
    response = client.post(f"/l/u/{thread_token(stack.settings, msg_id)}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    with stack.session() as s:
        assert "email" in s.get(Client, client_id).opted_out
        assert s.scalar(select(func.count()).select_from(Reply).where(Reply.intent == "unsubscribe")) == 1
        client_row = mark_address_rejected(s, s.get(Message, msg_id), "550 user unknown")
        assert client_row is not None and client_row.email_status == "bounced"


def test_a_reschedule_link_in_any_message_opens_the_live_slot_page(env):  # type: ignore[no-untyped-def]
    stack, client, (appt_id, client_id) = env
    path = _path(stack, "reschedule", client_id, appt_id)
    hop = client.get(path)
    assert hop.status_code == 302
    token = path.rsplit("/", 1)[1]
    assert hop.headers["Location"].endswith(f"/reschedule/{token}")
    page = client.get(hop.headers["Location"])
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    assert _replies(stack) == [], "opening the page is not an answer; picking a time is"
