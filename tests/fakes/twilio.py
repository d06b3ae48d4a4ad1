"""A local fake of Twilio's Messages API (``POST /2010-04-01/Accounts/{Sid}/Messages.json``), documented format.

HTTP Basic auth with the account SID and auth token, form-encoded ``To``/``From``/``Body``; answers ``201`` with
the message resource (``sid`` "SM…", ``status`` "queued"); errors as Twilio sends them: JSON with ``code``,
``message``, ``more_info`` and ``status`` (21211 for an invalid To number, 20003 for bad credentials). The real
``twilio`` library talks to it when ``client.api.base_url`` is the fake's URL.
"""
from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.fakes.serving import ThreadedServer

E164 = re.compile(r"^(whatsapp:)?\+[1-9]\d{6,14}$")


@dataclass
class FakeTwilio:
    account_sid: str
    auth_token: str
    url: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)  # numbers that replied STOP (error 21610)
    _failures: list[int] = field(default_factory=list)

    def fail_next(self, status: int) -> None:
        self._failures.append(status)

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _error(401, 20003, "Authenticate")
        if request.method != "POST" or request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return _error(404, 20404, "The requested resource was not found")
        if self._failures:
            status = self._failures.pop(0)
            return _error(status, 20500 if status >= 500 else 20429, "Internal Server Error"
                          if status >= 500 else "Too Many Requests")
        to, sender, body = request.form.get("To", ""), request.form.get("From", ""), request.form.get("Body", "")
        if not E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not E164.match(sender):
            return _error(400, 21212, f"The 'From' number {sender} is not a valid phone number.")
        if to.removeprefix("whatsapp:") in self.stopped:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if not body or len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        sid = "SM" + uuid.uuid4().hex
        resource = {"sid": sid, "account_sid": self.account_sid, "to": to, "from": sender, "body": body,
                    "status": "queued", "num_segments": str(len(body) // 153 + 1), "direction": "outbound-api",
                    "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"}
        self.sent.append(resource)
        return Response(json.dumps(resource), status=201, content_type="application/json")


def _error(status: int, code: int, message: str) -> Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
    return Response(json.dumps(body), status=status, content_type="application/json")


class RunningTwilio:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.app = FakeTwilio(account_sid, auth_token)
        self.server = ThreadedServer(self.app)

    def __enter__(self) -> FakeTwilio:
        self.app.url = self.server.start()
        return self.app

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
