"""The untrusted-input parsers, each wrapped as one function that accepts any bytes and may only fail in the
documented way. Shared by the hypothesis properties (test_parsers_hypothesis.py) and the atheris fuzzer
(fuzz_parsers.py), so both hold the parsers to the same contract:

- ``connectors.ical.expand``: never raises; bad events are described in ``Expanded.skipped``.
- ``replies.pipeline.parse`` / ``body_text``: raise only ``InboundRejected`` with a one-line reason.
- ``replies.strip.strip_reply`` and ``replies.intent.classify``: never raise, return text / an ``Intent``.
"""
from __future__ import annotations

from datetime import datetime, timezone

WINDOW = (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))


def ics(data: bytes) -> None:
    from connectors.ical import expand

    out = expand(data, window_start=WINDOW[0], window_end=WINDOW[1], default_tz="Europe/Madrid", source="fuzz")
    assert isinstance(out.occurrences, list)
    for skipped in out.skipped:
        assert isinstance(skipped, str) and "\n" not in skipped.strip(), "skip reasons are one line"
    for occ in out.occurrences:
        assert occ.starts_at.tzinfo is not None, "occurrences are timezone-aware"


def mime(data: bytes) -> None:
    from replies.pipeline import InboundRejected, body_text, parse

    try:
        mail = parse(data)
        body_text(mail)
    except InboundRejected as exc:
        reason = str(exc)
        assert reason and "\n" not in reason and len(reason) < 300, f"unclear rejection: {reason!r}"


def strip(data: bytes) -> None:
    from replies.strip import strip_reply

    text = data.decode("utf-8", "replace")
    out = strip_reply(text)
    assert isinstance(out, str)


def intent(data: bytes) -> None:
    from replies.intent import Intent, classify

    result = classify(data.decode("utf-8", "replace"), now=datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
                      tz="Europe/Madrid")
    assert isinstance(result, Intent)


TARGETS = {"ics": ics, "mime": mime, "strip": strip, "intent": intent}
