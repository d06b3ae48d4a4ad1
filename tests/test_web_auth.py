"""Accounts: sign up, sign in, sign out, password reset through the email channel, rate limiting, sessions."""
from __future__ import annotations

import re

from sqlalchemy import select

from store.models import Message, Owner
from tests.web_fixtures import PASSWORD, post_form, sign_up, web_app, web_client  # noqa: F401


def test_sign_up_then_sign_out_and_in(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "Ana@Example.com")
    assert web_client.get("/").status_code == 200
    with stack.session() as s:
        owner = s.scalar(select(Owner))
        assert owner.email == "ana@example.com"
        assert owner.password_hash.startswith("scrypt:32768:8:1$") and PASSWORD not in owner.password_hash
    r = post_form(web_client, "/", "/logout")
    assert r.status_code == 302
    assert web_client.get("/").status_code == 302  # signed out: back to the sign-in page
    r = post_form(web_client, "/login", email="ana@example.com", password=PASSWORD, next="/clients")
    assert r.status_code == 302 and r.headers["Location"] == "/clients"


def test_signup_validates_and_refuses_duplicates(web_client):  # type: ignore[no-untyped-def]
    r = post_form(web_client, "/signup", email="not-an-email", password="short", timezone="Mars/Olympus")
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and "at least 10 characters" in body and "time zone" in body
    sign_up(web_client, "ana@example.com")
    post_form(web_client, "/", "/logout")
    r = post_form(web_client, "/signup", email="ana@example.com", password=PASSWORD, timezone="UTC")
    assert r.status_code == 400 and "already exists" in r.get_data(as_text=True)


def test_login_is_rate_limited_per_ip_and_email(web_client):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    post_form(web_client, "/", "/logout")
    for _ in range(5):
        r = post_form(web_client, "/login", email="ana@example.com", password="wrong password!")
        assert r.status_code == 401
    r = post_form(web_client, "/login", email="ana@example.com", password=PASSWORD)
    assert r.status_code == 429, "even the right password waits once the limit is reached"
    # Another account from the same address is not locked out by someone else's failures.
    r = post_form(web_client, "/login", email="other@example.com", password="whatever12345")
    assert r.status_code == 401


def test_open_redirect_after_login_is_refused(web_client):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    post_form(web_client, "/", "/logout")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = post_form(web_client, "/login", email="ana@example.com", password=PASSWORD, next=evil)
        assert r.headers["Location"] == "/", evil
        post_form(web_client, "/", "/logout")


def test_password_reset_by_email_through_the_outbox(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    post_form(web_client, "/", "/logout")
    r = post_form(web_client, "/reset", email="ana@example.com")
    assert "we sent it a link" in r.get_data(as_text=True)
    post_form(web_client, "/reset", email="nobody@example.com")  # same answer, nothing sent
    with stack.session() as s:
        mails = list(s.scalars(select(Message).where(Message.kind == "password_reset")))
        assert len(mails) == 1 and mails[0].status == "sent" and mails[0].recipient == "ana@example.com"
        link = re.search(r"http://reagenda\.test(/reset/\S+)", mails[0].body_text).group(1)
    eml = list(stack.settings.outbox_dir.glob("pwreset-*.eml"))
    assert len(eml) == 1
    r = post_form(web_client, link, password="a brand new password")
    assert r.status_code == 302
    assert web_client.get("/").status_code == 200  # signed in with the new password
    # The link is single-use: the password it was minted for is gone.
    post_form(web_client, "/", "/logout")
    assert web_client.get(link).status_code == 400
    r = post_form(web_client, "/login", email="ana@example.com", password="a brand new password")
    assert r.status_code == 302


def test_password_change_signs_out_other_sessions(web_app, stack):  # type: ignore[no-untyped-def]
    first, second = web_app.test_client(), web_app.test_client()
    sign_up(first, "ana@example.com")
    post_form(second, "/login", email="ana@example.com", password=PASSWORD)
    assert second.get("/").status_code == 200
    with stack.session() as s:
        owner = s.scalar(select(Owner))
        owner.password_hash = owner.password_hash + "x"  # what a password change does to the stored hash
    assert second.get("/").status_code == 302


def test_session_cookie_flags(web_client):  # type: ignore[no-untyped-def]
    r = sign_up(web_client, "ana@example.com")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and cookie.startswith("reagenda_session=")


def test_reset_emails_are_limited_per_address(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com")
    post_form(web_client, "/", "/logout")
    for _ in range(5):
        r = post_form(web_client, "/reset", email="ana@example.com")
        assert "we sent it a link" in r.get_data(as_text=True)  # the same answer every time
    with stack.session() as s:
        assert len(list(s.scalars(select(Message).where(Message.kind == "password_reset")))) == 3
