"""Strip quoted history and signatures from a reply, in Spanish and English.

mail-parser-reply handles English Gmail ("On ... wrote:"), Outlook blocks and many languages, but its Spanish
pattern does not match Gmail's "El jue, 12 mar 2026 a las 10:03, Estudio Lumen <citas@…> escribió:" (nor the
header wrapped over two lines, as Gmail does with long names), and it leaves mobile footers such as "Enviado desde
mi iPhone" in the text. So the library runs first and our own pass closes those gaps; ``tests/test_replies_strip.py``
shows the library's failures next to our output.
"""
from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

# A line that introduces quoted history. Applied to the text with soft-wrapped header lines joined.
_QUOTE_HEADERS = [
    # Gmail es: "El jue, 12 mar 2026 a las 10:03, Estudio Lumen <citas@x> escribió:" (also without accent/comma)
    r"^\s*El\s.{0,200}?\s(escribi[oó]|escribio)\s*:?\s*$",
    # Gmail en / Apple Mail en: "On Thu, Mar 12, 2026 at 10:03 AM Estudio Lumen <x> wrote:"
    r"^\s*On\s.{0,200}?\swrote\s*:?\s*$",
    # Apple Mail es: "El 12 mar 2026, a las 10:03, Estudio Lumen <x> escribió:" is covered above.
    # Outlook / forwarding separators.
    r"^\s*-{2,}\s*(Original Message|Mensaje original|Forwarded message|Mensaje reenviado)\s*-{2,}\s*$",
    r"^\s*_{10,}\s*$",
    # Spanish/English "on date, name wrote" variants some clients put on one line with the quote.
    r"^\s*(Le|Am)\s.{0,200}?\s(a écrit|schrieb)\s*:?\s*$",
]
_HEADER_RE = [re.compile(p, re.IGNORECASE) for p in _QUOTE_HEADERS]
# Outlook header blocks start with From:/De: followed (within a few lines) by Sent:/Enviado:/Date:/Fecha:.
_OUTLOOK_FROM = re.compile(r"^\s*\*?(From|De)\s*:\*?\s.+$", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(Sent|Enviado|Date|Fecha|To|Para|Subject|Asunto|Cc)\s*:", re.IGNORECASE)

_SIGNATURE_LINES = [
    r"^\s*(Enviado|Env\.)\s+desde\s+(mi|el)\s+.{1,40}$",
    r"^\s*Sent\s+(from|via)\s+(my\s+)?.{1,40}$",
    r"^\s*Get\s+Outlook\s+for\s+.{1,30}$",
    r"^\s*Obtener\s+Outlook\s+para\s+.{1,30}$",
    r"^\s*Descargar\s+Outlook\s+para\s+.{1,30}$",
    r"^\s*--\s*$",  # the RFC 3676 signature separator "-- "
]
_SIG_RE = [re.compile(p, re.IGNORECASE) for p in _SIGNATURE_LINES]


# mail-parser-reply's time grows with the square of the line count (4,000 blank lines: 2 s; 20,000: about a minute),
# so a hostile or broken reply could hold a web thread; past this many lines only our own pass runs.
_LIBRARY_MAX_LINES = 1000


def _library_strip(text: str) -> str:
    if text.count("\n") > _LIBRARY_MAX_LINES:
        log.info("reply of %d lines: skipping mail-parser-reply (too slow on long input)", text.count("\n"))
        return text
    try:
        from mailparser_reply import EmailReplyParser
    except ImportError:  # pragma: no cover - a declared dependency; the own pass still works without it
        return text
    try:
        out = EmailReplyParser(languages=["es", "en"]).parse_reply(text=text)
    except Exception as exc:  # noqa: BLE001 - a library bug must not lose the reply
        log.info("mail-parser-reply failed (%s); using our own stripping only", type(exc).__name__)
        return text
    return out if out and out.strip() else text


def _join_wrapped_headers(lines: list[str]) -> list[str]:
    """Gmail wraps a long "El ..., Name <addr> escribió:" over two lines; join a line starting with El/On that
    does not end the header with the next one when that one ends it."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if (i + 1 < len(lines) and re.match(r"^\s*(El|On)\s", line, re.IGNORECASE)
                and re.search(r"(escribi[oó]|wrote)\s*:?\s*$", lines[i + 1], re.IGNORECASE)
                and not re.search(r"(escribi[oó]|wrote)\s*:?\s*$", line, re.IGNORECASE)):
            out.append(line.rstrip() + " " + lines[i + 1].strip())
            out.append("")  # keep the line count stable for the index mapping below
            i += 2
            continue
        out.append(line)
        i += 1
    return out


def _cut_quoted(text: str) -> str:
    lines = _join_wrapped_headers(text.splitlines())
    for i, line in enumerate(lines):
        if any(rx.match(line) for rx in _HEADER_RE):
            return "\n".join(lines[:i])
        if _OUTLOOK_FROM.match(line):
            following = [ln for ln in lines[i + 1:i + 6] if ln.strip()]
            if any(_OUTLOOK_NEXT.match(ln) for ln in following[:4]):
                return "\n".join(lines[:i])
        if line.lstrip().startswith(">"):
            rest = [ln for ln in lines[i:] if ln.strip()]
            if rest and all(ln.lstrip().startswith(">") or _is_sig(ln) for ln in rest):
                return "\n".join(lines[:i])
    return "\n".join(lines)


def _is_sig(line: str) -> bool:
    return any(rx.match(line) for rx in _SIG_RE)


def _cut_signature(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _is_sig(line):
            return "\n".join(lines[:i])
    return text


def strip_reply(text: str) -> str:
    """The new text the person wrote, without quoted history, signatures and mobile footers."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    out = _cut_quoted(_library_strip(text))
    out = _cut_signature(out)
    out = re.sub(r"\n{3,}", "\n\n", out).strip()
    return out
