"""An HTML body from the plain-text one: escaped paragraphs, links made clickable, and an opt-out footer.

Providers and mail clients rate text-only mail lower than multipart/alternative, and a visible unsubscribe link
in the HTML is what people look for. The text stays the source of truth (what owners edit); the HTML is derived.
"""
from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://[^\s<>\"')]+")

_FOOTER = {"es": "¿No quieres recibir más mensajes? <a href=\"{url}\">Darse de baja</a>",
           "en": "Don't want these messages? <a href=\"{url}\">Unsubscribe</a>"}


def _linkify(escaped: str) -> str:
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def text_to_html(text: str, *, locale: str = "es", unsubscribe_url: str = "") -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "\n".join(f"<p>{_linkify(html.escape(p)).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    footer = ""
    if unsubscribe_url and unsubscribe_url not in text:
        footer = ('\n<p style="color:#555;font-size:12px">'
                  + _FOOTER.get(locale, _FOOTER["en"]).format(url=html.escape(unsubscribe_url, quote=True)) + "</p>")
    lang = "es" if locale == "es" else "en"
    return (f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8"></head>'
            f'<body style="font-family:sans-serif;line-height:1.5;color:#111">\n{body}{footer}\n</body></html>\n')
