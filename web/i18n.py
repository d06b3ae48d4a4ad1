"""Spanish and English for the owner pages (Flask-Babel).

The language is, in order: the signed-in owner's setting; a ``?lang=`` the visitor chose (kept in the session);
the browser's Accept-Language; Spanish. Times are shown in the owner's time zone.

Catalogs: ``web/translations/es/LC_MESSAGES/messages.po`` is the source and the compiled ``messages.mo`` is
committed next to it, so a fresh clone works without a build step. ``compile_catalogs()`` (run by
``tests/test_web_i18n.py``, which fails when the committed ``.mo`` is stale) rebuilds it with Babel's own compiler.
Templates use English msgids: ``{{ _("Sign in") }}``.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from flask import Flask, g, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("es", "en")
TRANSLATIONS = Path(__file__).parent / "translations"


def select_locale() -> str:
    owner = getattr(g, "owner", None)
    if owner is not None and owner.locale in LANGUAGES:
        return str(owner.locale)
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return str(session["lang"])
    return request.accept_languages.best_match(LANGUAGES) or "es"


def select_timezone() -> str:
    owner = getattr(g, "owner", None)
    return str(owner.timezone) if owner is not None else "UTC"


def lang() -> str:
    return str(get_locale() or "es")


def tz() -> str:
    return select_timezone()


def when(instant: datetime | None, style: str = "medium") -> str:
    """A UTC instant as the owner reads it: their zone and language."""
    if instant is None:
        return ""
    return format_datetime(instant.astimezone(ZoneInfo(tz())), format=style, locale=lang())


def day(instant: datetime | None, style: str = "full") -> str:
    if instant is None:
        return ""
    return format_date(instant.astimezone(ZoneInfo(tz())), format=style, locale=lang())


def clock(instant: datetime | None) -> str:
    if instant is None:
        return ""
    return format_time(instant.astimezone(ZoneInfo(tz())), format="short", locale=lang())


def money(cents: int | None, currency: str = "EUR") -> str:
    return format_currency((cents or 0) / 100, currency, locale=lang())


def compile_catalogs() -> list[Path]:
    """Compile every ``.po`` into its ``.mo``; returns the files written."""
    written = []
    for po in TRANSLATIONS.glob("*/LC_MESSAGES/*.po"):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        written.append(mo)
    return written


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone, default_locale="es")
    app.jinja_env.filters.update(when=when, day=day, clock=clock, money=money)
    app.jinja_env.globals.update(current_lang=lang, LANGUAGES=LANGUAGES)
