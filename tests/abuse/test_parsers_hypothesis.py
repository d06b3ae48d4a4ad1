"""Property-based tests: the untrusted-input parsers (ICS, inbound MIME, reply stripping, intent) never crash,
never hang, and fail only with their documented, one-line errors, on random bytes, on mutations of realistic
inputs, and on pathological shapes (deep quoting, huge lines) that catch catastrophic regular expressions.

Derandomized, so CI sees the same examples every run; the atheris fuzzer (test_fuzz_atheris.py) explores."""
from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.abuse.parser_targets import ics, intent, mime, strip

SEEDS = Path(__file__).parent / "seeds"
ICS_LINES = (SEEDS / "event.ics").read_text().splitlines()
EML_LINES = (SEEDS / "reply.eml").read_bytes().split(b"\r\n")
BUDGET_S = 5.0  # one input must never take longer than this: a hang or a catastrophic regex fails

common = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _timed(fn, data: bytes) -> None:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    fn(data)
    took = time.monotonic() - start
    assert took < BUDGET_S, f"{fn.__name__} took {took:.1f}s on a {len(data)}-byte input"


text_bits = st.sampled_from(["", ":", ";", "=", "\\", "\r\n", "\n ", "TZID=", "Europe/Madrid", "Mars/Olympus",
                             "20260305T100000", "2026", "99999999T999999Z", "FREQ=SECONDLY", "COUNT=0",
                             "BYDAY=-1SU", "mailto:", "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VCALENDAR", "\x00",
                             "ñ", "\u202e", "X" * 300])


@st.composite
def mutated_lines(draw, lines: list, joiner, bits) -> bytes:  # type: ignore[no-untyped-def]
    """A realistic input with a few lines deleted, duplicated, truncated or spliced with hostile fragments."""
    out = list(lines)
    for _ in range(draw(st.integers(0, 6))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "truncate", "splice", "insert"]))
        if op == "delete":
            out.pop(i)
        elif op == "duplicate":
            out.insert(i, out[i])
        elif op == "truncate":
            out[i] = out[i][: draw(st.integers(0, len(out[i])))]
        elif op == "splice":
            cut = draw(st.integers(0, len(out[i])))
            out[i] = out[i][:cut] + draw(bits) + out[i][cut:]
        else:
            out.insert(i, draw(bits))
    return joiner(out)


ics_inputs = mutated_lines(ICS_LINES, lambda ls: "\r\n".join(ls).encode("utf-8", "surrogatepass"), text_bits)
eml_bits = st.sampled_from([b"", b"Content-Type: multipart/mixed; boundary=", b"charset=klingon",
                            b"Content-Transfer-Encoding: base64", b"=?utf-8?b?////?=", b"--b1", b"--b1--",
                            b"\xff\xfe", b"From: <>", b"Content-Type: text/html", b"<blockquote>", b"\x00"])
eml_inputs = mutated_lines(EML_LINES, b"\r\n".join, eml_bits)


@common
@given(st.one_of(st.binary(max_size=3000), ics_inputs))
def test_ics_never_crashes(data: bytes) -> None:
    _timed(ics, data)


@common
@given(st.one_of(st.binary(max_size=3000), eml_inputs))
def test_mime_rejects_cleanly(data: bytes) -> None:
    _timed(mime, data)


pathological = st.sampled_from([
    "> " * 5000, ">" * 20000, "\n" * 20000, "a" * 50000, ("On Mon wrote:\n" * 2000), ("-- \n" * 3000),
    " " * 30000 + "x", ("Confirmo " * 5000), ("El lun, 2 mar 2026 a las 10:00, " * 1500), "\u00a0" * 20000,
])


@common
@given(st.one_of(st.text(max_size=3000), pathological))
def test_reply_stripping_and_intent_never_crash_or_hang(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    _timed(strip, data)
    _timed(intent, data)


def test_the_seeds_themselves_parse() -> None:
    """The mutations start from inputs that work, so a mutation that breaks them is a real edge."""
    from connectors.ical import expand
    from replies.pipeline import body_text, parse
    from replies.strip import strip_reply
    from tests.abuse.parser_targets import WINDOW

    assert expand((SEEDS / "event.ics").read_bytes(), window_start=WINDOW[0], window_end=WINDOW[1]).occurrences
    assert "confirmo" in body_text(parse((SEEDS / "reply.eml").read_bytes())).lower()
    assert strip_reply((SEEDS / "reply.txt").read_text()).startswith("Perfecto")
