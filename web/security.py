"""Response headers that make the browser enforce what the pages promise: no inline script, no framing, no sniffing.

The Content-Security-Policy allows only same-origin scripts, styles, images and form targets; pages carry no inline
``<script>`` or ``style=""`` (SVG charts use presentation attributes), so nothing needs a nonce or ``unsafe-inline``.
Pages for a signed-in owner are ``no-store`` so a shared computer's back button does not show someone's clients.
"""
from __future__ import annotations

from flask import Flask, Response, g, request

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])


def security_headers(response: Response) -> Response:
    """Set on every response, including errors and static files."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), interest-cohort=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure or request.url.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if getattr(g, "owner_id", None) is not None and request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(security_headers)
