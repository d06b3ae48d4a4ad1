"""Insights: cancellation reasons, no-show and late-cancellation rates per month, fees charged / waived /
recovered, and appointments saved by rescheduling, as server-side SVG (readable without JavaScript; each chart has
a title, a description and the numbers as a table next to it for screen readers and printing).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence
from zoneinfo import ZoneInfo

from babel.dates import format_date
from flask import Blueprint, g, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy import select

from store.models import Appointment, LedgerEntry, Reply
from web.auth import db, login_required, now
from web.i18n import lang, money

bp = Blueprint("insights", __name__, url_prefix="/insights")

REASONS = {"price": _l("Price"), "service": _l("Service"), "convenience": _l("Convenience"),
           "availability": _l("Availability"), "expectations": _l("Expectations"), "emergency": _l("Emergency"),
           "other": _l("Other")}
COLORS = ("#0b5cab", "#a3161b", "#17663a", "#8a4b00", "#5b3f99")


@dataclass
class Month:
    key: str  # YYYY-MM
    label: str
    appointments: int = 0
    no_shows: int = 0
    late_cancels: int = 0
    saved: int = 0
    charged: int = 0
    waived: int = 0
    recovered: int = 0

    @property
    def no_show_rate(self) -> float:
        return 100 * self.no_shows / self.appointments if self.appointments else 0.0

    @property
    def late_cancel_rate(self) -> float:
        return 100 * self.late_cancels / self.appointments if self.appointments else 0.0


def last_months(current: datetime, tz: str, count: int = 12) -> list[Month]:
    local = current.astimezone(ZoneInfo(tz))
    y, m = local.year, local.month
    out = []
    for _i in range(count):
        out.append(Month(f"{y:04d}-{m:02d}", format_date(datetime(y, m, 1), "MMM yy", locale=lang())))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return list(reversed(out))


def reason_code(text: str) -> str:
    """The reason a client picked on the cancel page ("reason: price; contact: whatsapp") or typed first."""
    m = re.search(r"reason:\s*([a-z]+)", (text or "").lower())
    word = m.group(1) if m else ((text or "").strip().lower().split() or ["other"])[0]
    return word if word in REASONS else "other"


def compute(owner_id: int, tz: str, current: datetime) -> tuple[list[Month], dict[str, int]]:
    months = last_months(current, tz)
    by_key = {m.key: m for m in months}
    zone = ZoneInfo(tz)

    def month_of(instant: datetime) -> Month | None:
        return by_key.get(instant.astimezone(zone).strftime("%Y-%m"))

    s = db()
    for a in s.scalars(select(Appointment).where(Appointment.owner_id == owner_id, Appointment.starts_at <= current)):
        m = month_of(a.starts_at)
        if m is None:
            continue
        m.appointments += 1
        m.no_shows += a.attendance == "no_show"
        m.late_cancels += bool(a.status == "cancelled" and getattr(a, "late_cancel", False))
        m.saved += bool(getattr(a, "move_count", 0) and a.status != "cancelled")
    for e in s.scalars(select(LedgerEntry).where(LedgerEntry.owner_id == owner_id)):
        m = month_of(e.created_at)
        if m is None:
            continue
        if e.kind in ("fee", "deposit_kept"):
            m.charged += e.amount_cents
        elif e.kind == "waiver":
            m.waived += e.amount_cents
        elif e.kind == "payment":
            m.recovered += e.amount_cents
    reasons = {k: 0 for k in REASONS}
    for r in s.scalars(select(Reply).where(Reply.owner_id == owner_id, Reply.intent == "reason")):
        reasons[reason_code(r.text or r.raw_text)] += 1
    return months, reasons


# ------------------------------------------------------------------------------------------ SVG


def _svg_open(width: int, height: int, title: str, desc: str, ident: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
            f'xmlns="http://www.w3.org/2000/svg"><title id="{ident}-t">{escape(title)}</title>'
            f'<desc id="{ident}-d">{escape(desc)}</desc>')


def hbar_chart(items: Sequence[tuple[str, float]], title: str, ident: str) -> Markup:
    """Horizontal bars with the value written at the end: good for a handful of categories."""
    width, row, left = 600, 28, 150
    height = row * max(len(items), 1) + 10
    top = max((v for _l2, v in items), default=0) or 1
    parts = [_svg_open(width, height, title, ", ".join(f"{k}: {v:g}" for k, v in items), ident)]
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = (width - left - 60) * value / top
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" fill="{COLORS[0]}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 17}">{value:g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str, ident: str,
                 unit: str = "") -> Markup:
    """Vertical bars per month, one colour per series, with a legend and a zero line."""
    width, height, left, bottom, top_pad = 640, 260, 44, 40, 30
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = max((v for _n, vals in series for v in vals), default=0) or 1
    group = plot_w / max(len(labels), 1)
    bar = max(2.0, (group - 6) / max(len(series), 1))
    desc = "; ".join(f"{n}: " + ", ".join(f"{lab} {v:.0f}{unit}" for lab, v in zip(labels, vals))
                     for n, vals in series)
    parts = [_svg_open(width, height, title, desc, ident)]
    base_y = top_pad + plot_h
    for frac in (0, 0.5, 1):
        y = base_y - plot_h * frac
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d5dbe3"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{top * frac:.3g}{escape(unit)}</text>')
    for i, lab in enumerate(labels):
        x0 = left + i * group + 3
        for j, (_name, vals) in enumerate(series):
            v = vals[i]
            h = plot_h * v / top
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{base_y - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[j % len(COLORS)]}"/>')
        parts.append(f'<text x="{x0 + group / 2 - 3:.1f}" y="{base_y + 16}" text-anchor="middle">{escape(lab)}</text>')
    for j, (name, _vals) in enumerate(series):
        x = left + j * 170
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{COLORS[j % len(COLORS)]}"/>'
                     f'<text x="{x + 18}" y="17">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@bp.get("")
@login_required
def index():  # type: ignore[no-untyped-def]
    months, reasons = compute(g.owner_id, g.owner.timezone, now())
    labels = [m.label for m in months]
    cur = (g.owner.policy or {}).get("currency", "EUR")
    charts = {
        "reasons": hbar_chart([(str(REASONS[k]), v) for k, v in reasons.items()], _("Cancellation reasons"),
                              "reasons"),
        "rates": grouped_bars(labels, [(_("No-show rate"), [m.no_show_rate for m in months]),
                                       (_("Late-cancellation rate"), [m.late_cancel_rate for m in months])],
                              _("No-show and late-cancellation rates per month"), "rates", "%"),
        "fees": grouped_bars(labels, [(_("Charged"), [m.charged / 100 for m in months]),
                                      (_("Waived"), [m.waived / 100 for m in months]),
                                      (_("Recovered"), [m.recovered / 100 for m in months])],
                             _("Fees charged, waived and recovered per month"), "fees"),
        "saved": grouped_bars(labels, [(_("Saved by rescheduling"), [float(m.saved) for m in months])],
                              _("Appointments saved by rescheduling per month"), "saved"),
    }
    return render_template("insights/index.html", charts=charts, months=months, reasons=reasons,
                           reason_labels=REASONS, currency=cur, money=money)
