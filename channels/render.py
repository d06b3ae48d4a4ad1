"""Render a message kind into subject and body, in the reader's language and time zone, at send time.

Templates live in ``channels/templates/<locale>/<kind>.txt``; the first line is ``Subject: ...``. Dates are
formatted with Babel in the reader's zone and locale, so the same appointment reads "martes, 24 de noviembre de
2026, 10:00 (hora de Madrid)" for one client and "Tuesday, November 24, 2026, 4:00 AM (Mexico City time)" for another.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_timezone_location
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

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


@functools.lru_cache(maxsize=64)
def babel_locale(code: str) -> Locale:
    """Babel parses a locale string on every call it is given one (a dozen times per message); parse each once."""
    return Locale.parse(code)


@functools.lru_cache(maxsize=1024)
def _zone_name(tz: str, locale: str) -> str:
    where = get_timezone_location(ZoneInfo(tz), locale=babel_locale(locale), return_city=True)
    return f"hora de {where}" if locale == "es" else f"{where} time"


def format_clock(instant: datetime, tz: str, locale: str) -> str:
    """The local time of day, short ("10:00", "4:00 PM")."""
    return format_time(instant.astimezone(ZoneInfo(tz)), format="short", locale=babel_locale(locale))


def format_when(instant: datetime, tz: str, locale: str) -> str:
    """A full, unambiguous local date and time, with the zone named the way a person says it."""
    local = instant.astimezone(ZoneInfo(tz))
    date = format_date(local, format="full", locale=babel_locale(locale))
    clock = format_time(local, format="short", locale=babel_locale(locale))
    return f"{date}, {clock} ({_zone_name(tz, locale)})"


# Owner-written texts run in Jinja's sandbox with the same options (and the shipped templates for includes):
# an owner can use {{ client_name }} but cannot reach Python objects through a template.
sandbox = SandboxedEnvironment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                               autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def _split(out: str, name: str) -> Rendered:
    first, _, body = out.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"{name} must start with a 'Subject:' line")
    return Rendered(subject=first.removeprefix("Subject:").strip(), text=body.lstrip("\n"))


def render(kind: str, locale: str, context: dict[str, Any], owner_text: str | None = None) -> Rendered:
    """The message in ``locale``: the owner's own text for this kind when they wrote one, else ours.

    An owner's text that no longer renders (a placeholder removed since it was saved, a typo) never blocks a
    message: it is logged by name and the shipped template is used instead.
    """
    if owner_text:
        try:
            return _split(sandbox.from_string(owner_text).render(**context), f"the owner's {locale}/{kind} text")
        except (TemplateError, ValueError) as exc:
            log.warning("owner text for %s/%s does not render (%s); sending the default text", locale, kind, exc)
    template = _env.get_template(f"{pick_locale(locale)}/{kind}.txt")
    return _split(template.render(**context), f"template {locale}/{kind}.txt")
