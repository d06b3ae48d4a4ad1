"""Render a message kind into subject and body, in the reader's language and time zone, at send time.

Templates live in ``channels/templates/<locale>/<kind>.txt``; the first line is ``Subject: ...``. Dates are
formatted with Babel in the reader's zone and locale, so the same appointment reads "martes, 24 de noviembre de
2026, 10:00 (hora de Madrid)" for one client and "Tuesday, November 24, 2026, 4:00 AM (Mexico City time)" for another.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_timezone_location
from jinja2 import Environment, FileSystemLoader, StrictUndefined

SUPPORTED_LOCALES = ("es", "en")
TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, autoescape=False,
                   keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


def pick_locale(*candidates: str | None) -> str:
    for c in candidates:
        if c and c[:2].lower() in SUPPORTED_LOCALES:
            return c[:2].lower()
    return "es"


def format_when(instant: datetime, tz: str, locale: str) -> str:
    """A full, unambiguous local date and time, with the zone named the way a person says it."""
    local = instant.astimezone(ZoneInfo(tz))
    date = format_date(local, format="full", locale=locale)
    clock = format_time(local, format="short", locale=locale)
    where = get_timezone_location(ZoneInfo(tz), locale=locale, return_city=True)
    zone = f"hora de {where}" if locale == "es" else f"{where} time"
    return f"{date}, {clock} ({zone})"


def render(kind: str, locale: str, context: dict[str, Any]) -> Rendered:
    template = _env.get_template(f"{pick_locale(locale)}/{kind}.txt")
    out = template.render(**context)
    first, _, body = out.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"template {locale}/{kind}.txt must start with a 'Subject:' line")
    return Rendered(subject=first.removeprefix("Subject:").strip(), text=body.lstrip("\n"))
