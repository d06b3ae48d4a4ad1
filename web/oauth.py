"""The OAuth handshakes for Google (google-auth-oauthlib) and Microsoft (msal), both authorization code + PKCE.

``start`` returns the provider URL and what must be remembered until the callback (state, PKCE verifier), which
the caller keeps in the signed session; ``finish`` checks nothing itself but exchanges the code, with that verifier,
for tokens. The state comparison happens in ``web.connect.oauth_callback`` before ``finish`` is called.

Scopes are the narrowest that let Reagenda read events and free/busy and write the events it books:
Google ``calendar.calendarlist.readonly``, ``calendar.events``, ``calendar.freebusy`` (+ ``openid email`` to name the
account); Microsoft ``Calendars.ReadWrite`` + ``User.Read`` (msal adds ``offline_access openid profile``).
Endpoints can be pointed at local fakes through app config (``GOOGLE_AUTH_URI``, ``GOOGLE_TOKEN_URI``,
``MICROSOFT_AUTHORITY``), which is how the tests drive the real client libraries.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from flask import current_app

from web.context import get_context

GOOGLE_SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
]
MICROSOFT_SCOPES = ["Calendars.ReadWrite", "User.Read"]


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
    import msal

    s = get_context().settings
    authority = current_app.config.get("MICROSOFT_AUTHORITY",
                                       f"https://login.microsoftonline.com/{s.microsoft_tenant}")
    kwargs: dict[str, Any] = {}
    if "MICROSOFT_AUTHORITY" in current_app.config:  # a local fake: no instance discovery on the internet
        kwargs.update(instance_discovery=False, validate_authority=False)
    return msal.ConfidentialClientApplication(s.microsoft_client_id, client_credential=s.microsoft_client_secret,
                                              authority=authority, **kwargs)


def start(provider: str, redirect_uri: str) -> tuple[str, dict[str, Any]]:
    if provider == "google":
        flow = _google_flow(redirect_uri)
        url, state = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="false")
        return url, {"state": state, "verifier": flow.code_verifier}
    flow = _msal_app().initiate_auth_code_flow(MICROSOFT_SCOPES, redirect_uri=redirect_uri)
    return flow["auth_uri"], {"state": flow["state"], "flow": flow}


def finish(provider: str, pending: dict[str, Any], args: dict[str, str], redirect_uri: str
           ) -> tuple[str, dict[str, Any]]:
    """(account name, credentials to store encrypted)."""
    if provider == "google":
        flow = _google_flow(redirect_uri, state=pending["state"], verifier=pending["verifier"])
        flow.fetch_token(code=args.get("code", ""))
        c = flow.credentials
        s = get_context().settings
        creds = {"token": c.token, "refresh_token": c.refresh_token, "token_uri": c.token_uri,
                 "client_id": s.google_client_id, "client_secret": s.google_client_secret,
                 "scopes": list(c.scopes or GOOGLE_SCOPES),
                 "expiry": c.expiry.replace(tzinfo=timezone.utc).isoformat() if c.expiry else None}
        return _email_from_id_token(getattr(c, "id_token", None)), creds
    result = _msal_app().acquire_token_by_auth_code_flow(pending["flow"], args)
    if "error" in result:
        raise ValueError(result.get("error_description") or result["error"])
    claims = result.get("id_token_claims") or {}
    expires = datetime.now(timezone.utc).timestamp() + int(result.get("expires_in", 3600))
    creds = {"access_token": result.get("access_token"), "refresh_token": result.get("refresh_token"),
             "expires_at": expires, "scopes": MICROSOFT_SCOPES}
    return str(claims.get("preferred_username") or claims.get("email") or ""), creds


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
