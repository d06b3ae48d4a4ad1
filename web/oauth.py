"""The OAuth handshakes for Google (google-auth-oauthlib) and Microsoft (msal), both authorization code + PKCE.

``start`` returns the provider URL and what must be remembered until the callback (state, PKCE verifier), which
the caller keeps in the signed session; ``finish`` checks nothing itself but exchanges the code, with that verifier,
for tokens. The state comparison happens in ``web.connect.oauth_callback`` before ``finish`` is called.

Scopes are the narrowest that let Reagenda read events and free/busy and write the events it books:
Google ``calendar.calendarlist.readonly``, ``calendar.events``, ``calendar.freebusy`` (+ ``openid email`` to name the
account); Microsoft: the scopes of ``connectors.outlook`` (msal adds ``offline_access openid profile``).
Endpoints can be pointed at local fakes through app config (``GOOGLE_AUTH_URI``, ``GOOGLE_TOKEN_URI``,
``MICROSOFT_AUTHORITY``), which is how the tests drive the real client libraries.
"""
from __future__ import annotations

import base64
import json
import os
from datetime import timezone
from typing import Any

import logging

from flask import current_app

from web.context import get_context

log = logging.getLogger(__name__)

GOOGLE_SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
]


def google_configured() -> bool:
    s = get_context().settings
    return bool(s.google_client_id and s.google_client_secret)


def microsoft_configured() -> bool:
    s = get_context().settings
    return bool(s.microsoft_client_id and s.microsoft_client_secret)


def _google_flow(redirect_uri: str, *, state: str | None = None, verifier: str | None = None):  # type: ignore[no-untyped-def]
    from google_auth_oauthlib.flow import Flow

    s = get_context().settings
    config = {"web": {
        "client_id": s.google_client_id, "client_secret": s.google_client_secret,
        "auth_uri": current_app.config.get("GOOGLE_AUTH_URI", "https://accounts.google.com/o/oauth2/v2/auth"),
        "token_uri": current_app.config.get("GOOGLE_TOKEN_URI", "https://oauth2.googleapis.com/token"),
        "redirect_uris": [redirect_uri],
    }}
    return Flow.from_client_config(config, scopes=GOOGLE_SCOPES, redirect_uri=redirect_uri, state=state,
                                   code_verifier=verifier, autogenerate_code_verifier=verifier is None)


def _msal_app():  # type: ignore[no-untyped-def]
    """The msal app from ``connectors.outlook`` (one place builds it; a fake authority skips instance discovery)."""
    from connectors import outlook

    s = get_context().settings
    authority = current_app.config.get("MICROSOFT_AUTHORITY",
                                       f"https://login.microsoftonline.com/{s.microsoft_tenant}")
    session = current_app.config.get("REAGENDA_CONNECTOR_OPTIONS", {}).get("outlook", {}).get("session")
    return outlook.make_app(s.microsoft_client_id, s.microsoft_client_secret, authority=authority,
                            http_client=session)


def start(provider: str, redirect_uri: str) -> tuple[str, dict[str, Any]]:
    if provider == "google":
        flow = _google_flow(redirect_uri)
        url, state = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="false")
        return url, {"state": state, "verifier": flow.code_verifier}
    from connectors import outlook

    flow = outlook.start_authorization(_msal_app(), redirect_uri)  # PKCE + nonce; answers by form_post
    return flow["auth_uri"], {"state": flow["state"], "flow": flow}


def finish(provider: str, pending: dict[str, Any], args: dict[str, str], redirect_uri: str
           ) -> tuple[str, dict[str, Any]]:
    """(account name, credentials to store encrypted)."""
    if provider == "google":
        # Google may grant fewer scopes than asked (granular consent): accept the answer, then check it ourselves.
        os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
        flow = _google_flow(redirect_uri, state=pending["state"], verifier=pending["verifier"])
        flow.fetch_token(code=args.get("code", ""), include_client_id=True)  # client id + secret in the body
        c = flow.credentials
        granted = set(flow.oauth2session.token.get("scope") or GOOGLE_SCOPES)
        if isinstance(flow.oauth2session.token.get("scope"), str):
            granted = set(flow.oauth2session.token["scope"].split())
        if not any(g.endswith(("/calendar.events", "/calendar")) for g in granted):
            raise ValueError("Google did not grant access to calendar events; connect again and leave the "
                             "calendar permission ticked")
        s = get_context().settings
        creds = {"token": c.token, "refresh_token": c.refresh_token, "token_uri": c.token_uri,
                 "client_id": s.google_client_id, "client_secret": s.google_client_secret,
                 "scopes": list(c.scopes or GOOGLE_SCOPES),
                 "expiry": c.expiry.replace(tzinfo=timezone.utc).isoformat() if c.expiry else None}
        return _email_from_id_token(getattr(c, "id_token", None)), creds
    from connectors import outlook

    creds = outlook.finish_authorization(_msal_app(), pending["flow"], args)
    return str(creds.get("account", "")), creds


def _email_from_id_token(token: str | None) -> str:
    """The account's address from an ID token received directly from the token endpoint over TLS (OIDC core
    3.1.3.7 allows skipping the signature check in that case); only used as a display name."""
    if not token or token.count(".") != 2:
        return ""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(data.get("email", ""))
    except ValueError:
        return ""


def revoke(provider: str, credentials: dict[str, Any]) -> bool:
    """Tell the provider to forget the grant, best effort (the caller deletes the tokens either way).

    Google: RFC 7009 revocation of the refresh token (which also ends its access tokens). Microsoft has no endpoint
    that revokes one app's refresh token without signing the user out everywhere, so nothing is sent there; the
    deleted token cache is unusable to anyone. Returns True when the provider confirmed."""
    import requests

    if provider != "google":
        return False
    token = credentials.get("refresh_token") or credentials.get("token")
    if not token:
        return False
    url = current_app.config.get("GOOGLE_REVOKE_URI", "https://oauth2.googleapis.com/revoke")
    try:
        resp = requests.post(url, data={"token": token}, timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    except requests.RequestException as exc:
        log.info("google revoke failed: %s", type(exc).__name__)
        return False
    return resp.status_code == 200
