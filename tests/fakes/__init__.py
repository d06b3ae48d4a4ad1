"""Local fake provider servers for tests and benchmarks, speaking the documented wire formats.

``google_calendar.FakeGoogleCalendar`` (Calendar API v3 + OAuth token endpoint, plain HTTP) and
``graph.FakeGraph`` (Microsoft Graph v1.0 + the Microsoft identity platform endpoints msal uses, HTTPS with a
self-signed certificate). Both start on port 0 in a thread: ``with FakeGoogleCalendar() as fake: fake.url``.
See docs/connectors-google-outlook.md for what each one implements.
"""
