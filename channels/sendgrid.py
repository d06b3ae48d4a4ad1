"""Email through SendGrid's v3 mail send API, with the official ``sendgrid`` library.

Each message carries: text and HTML parts, a per-thread ``Reply-To`` (``reply+<token>@INBOUND_DOMAIN``, see
``channels.threads``) so replies come back to Inbound Parse already matched, our own ``Message-ID`` (a second way
to match), ``custom_args`` with our message id and idempotency key (echoed in Event Webhook posts), the message kind
as a category, and ``List-Unsubscribe`` + ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).

Errors: 5xx, 429, timeouts and connection failures raise ``TransientChannelError`` (the engine retries with
backoff); a 400 that names the recipient raises ``PermanentChannelError`` (the address is marked, not the channel);
401/403 (a bad API key) raise ``ChannelNotConfigured``. The API key never appears in a log or an error.
``SENDGRID_HOST`` points the library at a local fake in tests (``tests/fakes/sendgrid.py``).

Requests go through the library's own client (URL, headers, JSON body, ``Response``, its ``HTTPError`` classes),
with one change: they travel on a kept-alive connection (``channels.keepalive``) instead of a new urllib opener and
TCP connection per message.
"""
from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import logging
import socket
from email.utils import parseaddr
from typing import Any
from urllib.error import HTTPError as URLLibHTTPError, URLError

import python_http_client

from channels.base import (AddressRejected, Channel, ChannelNotConfigured, OutgoingMessage,
                           PermanentChannelError, TransientChannelError)
from channels.html import text_to_html
from channels.keepalive import KeptAlive
from channels.registry import register
from channels.threads import message_id_header, reply_address, thread_token

log = logging.getLogger(__name__)
TIMEOUT_S = 20.0


def _address(raw: str) -> dict[str, str]:
    if "@" in raw and not any(c in raw for c in ' <>",;()[]\\:'):
        return {"email": raw}  # a bare address (most recipients): parseaddr would return it unchanged, slowly
    name, addr = _parseaddr(raw)
    if not addr or "@" not in addr:
        raise PermanentChannelError(f"not an email address: {raw!r}")
    return {"email": addr, "name": name} if name else {"email": addr}


def unsubscribe_headers(settings: Any, message: OutgoingMessage) -> dict[str, str]:
    """RFC 2369/8058 headers: a one-click HTTPS URL and, with an inbound domain, a mailto fallback."""
    urls: list[str] = []
    if message.unsubscribe_url:
        urls.append(f"<{message.unsubscribe_url}>")
    elif message.message_id is not None:
        urls.append(f"<{settings.base_url}/l/u/{thread_token(settings, message.message_id)}>")
    if settings.inbound_domain and message.message_id is not None:
        urls.append(f"<mailto:{reply_address(settings, message.message_id)}?subject=unsubscribe>")
    if not urls:
        return {}
    headers = {"List-Unsubscribe": ", ".join(urls)}
    if urls[0].startswith("<http"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def build_payload(settings: Any, message: OutgoingMessage) -> dict[str, Any]:
    """The v3 /mail/send JSON body (pure: tested without any network)."""
    reply_to = message.reply_to or reply_address(settings, message.message_id)
    headers = {**unsubscribe_headers(settings, message), **message.headers}
    headers.setdefault("Message-ID", message_id_header(settings, message.message_id, message.idempotency_key))
    unsubscribe_url = headers["List-Unsubscribe"].split(",")[0].strip("<> ") if "List-Unsubscribe" in headers else ""
    html = message.html or text_to_html(message.text, locale=message.locale,
                                        unsubscribe_url=unsubscribe_url if unsubscribe_url.startswith("http") else "")
    custom_args = {"reagenda_key": message.idempotency_key[:200]}
    if message.message_id is not None:
        custom_args["reagenda_message_id"] = str(message.message_id)
    categories = [c for c in (*message.categories, message.kind, "reagenda") if c][:10]
    body: dict[str, Any] = {
        "personalizations": [{"to": [_address(message.recipient)], "custom_args": custom_args}],
        "from": _address(message.sender),
        "subject": message.subject,
        "content": [{"type": "text/plain", "value": message.text}, {"type": "text/html", "value": html}],
        "headers": headers,
        "categories": list(dict.fromkeys(categories)),
    }
    if reply_to:
        body["reply_to"] = _address(reply_to)
    if message.attachments:
        body["attachments"] = [{"content": base64.b64encode(a.data).decode(), "type": a.content_type,
                                "filename": a.filename, "disposition": "attachment"} for a in message.attachments]
    return body


_CONNECTIONS = KeptAlive()


class KeptAliveClient(python_http_client.Client):
    """python_http_client's ``Client`` whose verb calls (``client.mail.send.post(...)``) reuse a kept-alive
    connection. URL building, headers and the body are the library's; errors are the library's ``HTTPError``
    subclasses, made by its own ``handle_error``."""

    def _build_client(self, name: str | None = None) -> "KeptAliveClient":
        url_path = self._url_path + [name] if name else self._url_path
        return KeptAliveClient(host=self.host, version=self._version, request_headers=self.request_headers,
                               url_path=url_path, append_slash=self.append_slash, timeout=self.timeout)

    def __getattr__(self, name: str) -> Any:
        if name not in self.methods:
            return super().__getattr__(name)
        method = name.upper()

        def http_request(request_body: Any = None, query_params: Any = None, request_headers: Any = None,
                         timeout: float | None = None, **_: Any) -> python_http_client.client.Response:
            if request_headers:
                self._update_headers(request_headers)
            data = None
            if request_body is not None:
                if self.request_headers.get("Content-Type", "application/json") != "application/json":
                    data = request_body.encode("utf-8")
                else:
                    self.request_headers.setdefault("Content-Type", "application/json")
                    data = json.dumps(request_body).encode("utf-8")
            url = self._build_url(query_params)
            reply = _CONNECTIONS.request(method, url, data, self.request_headers, timeout or self.timeout or TIMEOUT_S)
            if reply.status >= 400:
                raise python_http_client.exceptions.handle_error(
                    URLLibHTTPError(url, reply.status, reply.reason, reply.headers, io.BytesIO(reply.body)))
            return python_http_client.client.Response(_Answered(reply))

        return http_request


class _Answered:
    """A ``keepalive.Reply`` in the shape python_http_client's ``Response`` reads (urllib's response methods)."""

    def __init__(self, reply: Any) -> None:
        self._reply = reply

    def getcode(self) -> int:
        return self._reply.status

    def read(self) -> bytes:
        return self._reply.body

    def info(self) -> Any:
        return self._reply.headers


@functools.lru_cache(maxsize=256)
def _parseaddr(raw: str) -> tuple[str, str]:
    return parseaddr(raw)  # the sender is the same "Business <address>" for many messages


@functools.lru_cache(maxsize=4)
def _api_client(api_key: str, host: str) -> Any:
    """One library client per key and host for the process (building one per message showed in profiles); its
    requests go over ``_CONNECTIONS``, which keeps one connection per thread."""
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(api_key, **({"host": host} if host else {}))
    client.client = KeptAliveClient(host=client.host, request_headers=client.client.request_headers,
                                    version=3, timeout=TIMEOUT_S)
    return client


class SendGridChannel(Channel):
    key = "sendgrid"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        if not settings.sendgrid_api_key:
            raise ChannelNotConfigured("EMAIL_BACKEND=sendgrid needs SENDGRID_API_KEY (an API key starting SG.)")

    def _client(self) -> Any:
        return _api_client(self.settings.sendgrid_api_key, self.settings.sendgrid_host)

    def send(self, message: OutgoingMessage) -> str:
        from python_http_client.exceptions import HTTPError

        payload = build_payload(self.settings, message)
        try:
            response = self._client().client.mail.send.post(request_body=payload)
        except HTTPError as exc:
            raise _classify(exc.status_code, exc.body, message.recipient) from None
        except (URLError, socket.timeout, ConnectionError, TimeoutError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientChannelError(f"SendGrid could not be reached: {reason}") from None
        provider_id = (response.headers.get("X-Message-Id") if response.headers else None) or ""
        log.info("sendgrid accepted message %s (%s)", message.message_id, provider_id or "no id")
        return f"sendgrid:{provider_id}"


def _errors(body: Any) -> list[dict[str, Any]]:
    try:
        data = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _classify(status: int, body: Any, recipient: str) -> Exception:
    errors = _errors(body)
    text = "; ".join(str(e.get("message", "")) for e in errors)[:300] or "no detail"
    if status in (401, 403):
        return ChannelNotConfigured(f"SendGrid rejected the API key (HTTP {status}); check SENDGRID_API_KEY "
                                    "and its Mail Send permission")
    if status == 429 or status >= 500:
        return TransientChannelError(f"SendGrid is unavailable (HTTP {status}): {text}")
    about_recipient = any("personalizations" in str(e.get("field", "")) or "to" == str(e.get("field", ""))
                          or "email" in str(e.get("field", "")) for e in errors)
    if about_recipient:
        return AddressRejected(f"SendGrid refused the recipient address {recipient!r} (HTTP {status}): {text}",
                               address=recipient)
    return PermanentChannelError(f"SendGrid refused the message (HTTP {status}): {text}")


register(SendGridChannel)
