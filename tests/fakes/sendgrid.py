"""A local fake of SendGrid's v3 ``POST /v3/mail/send``, following the documented wire format.

It checks what SendGrid checks (Bearer API key, personalizations with ``to``, ``from.email``, a subject,
``content`` with ``text/plain`` before ``text/html``, reply_to, headers as strings, at most 10 categories,
custom_args values as strings), answers ``202 Accepted`` with an empty body and an ``X-Message-Id`` header, and
can be told to fail: ``fail_next(503)`` for an outage, ``reject`` for an address SendGrid refuses with 400 and
an ``errors`` array naming ``personalizations.0.to.0.email``. The real ``sendgrid`` library talks to it via
``SendGridAPIClient(api_key, host=fake.url)``.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.fakes.serving import ThreadedServer

VALID_KEY_PREFIX = "SG."


@dataclass
class FakeSendGrid:
    url: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1) -> None:
        self._failures.extend([status] * times)

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path != "/v3/mail/send" or request.method != "POST":
            return _errors(404, "Not found", None)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer " + VALID_KEY_PREFIX):
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked", None)
        with self._lock:
            if self._failures:
                status = self._failures.pop(0)
                return _errors(status, "Service unavailable" if status >= 500 else "Too many requests", None)
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            return _errors(400, "Bad Request", None)
        problem = validate(body)
        if problem:
            return _errors(400, *problem)
        for i, p in enumerate(body["personalizations"]):
            for j, to in enumerate(p["to"]):
                if to["email"] in self.reject:
                    return _errors(400, "Does not contain a valid address.", f"personalizations.{i}.to.{j}.email")
        with self._lock:
            self.sent.append(body)
        return Response(b"", status=202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})


def validate(body: dict[str, Any]) -> tuple[str, str] | None:
    """The documented checks, each answered the way SendGrid answers it: (message, field)."""
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        return "The personalizations field is required and must have at least one personalization.", "personalizations"
    for i, p in enumerate(pers):
        if not p.get("to"):
            return "The to array is required for all personalization objects.", f"personalizations.{i}.to"
        for j, to in enumerate(p["to"]):
            if "@" not in str(to.get("email", "")):
                return "Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"
        for k, v in (p.get("custom_args") or {}).items():
            if not isinstance(v, str):
                return "Custom args must be strings.", f"personalizations.{i}.custom_args.{k}"
    if "@" not in str((body.get("from") or {}).get("email", "")):
        return "The from object must be provided for every email send.", "from"
    if not body.get("subject") and not all(p.get("subject") for p in pers):
        return "The subject is required.", "subject"
    content = body.get("content") or []
    if not content:
        return "Unless a valid template_id is provided, the content parameter is required.", "content"
    types = [c.get("type") for c in content]
    if "text/plain" in types and types.index("text/plain") != 0:
        return "If present, text/plain content must be first.", "content"
    if "reply_to" in body and "@" not in str(body["reply_to"].get("email", "")):
        return "Reply to email does not contain a valid address.", "reply_to"
    for name, value in (body.get("headers") or {}).items():
        if not isinstance(value, str):
            return "Invalid type. Expected: string.", f"headers.{name}"
    if len(body.get("categories") or []) > 10:
        return "Too many categories.", "categories"
    return None


def _errors(status: int, message: str, field_name: str | None) -> Response:
    payload = {"errors": [{"message": message, "field": field_name, "help": None}]}
    return Response(json.dumps(payload), status=status, content_type="application/json")


class RunningFake:
    """The fake on 127.0.0.1, port 0, in a thread; ``with RunningFake() as fake: fake.url``."""

    def __init__(self) -> None:
        self.app = FakeSendGrid()
        self.server = ThreadedServer(self.app)

    def __enter__(self) -> FakeSendGrid:
        self.app.url = self.server.start()
        return self.app

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
