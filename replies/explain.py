"""``reagenda reply explain FILE.eml [--json]``: how a raw email would be handled, for an operator; and
``reagenda reply poll [--every SECONDS]``, the IMAP poller (``replies.imap``).

Shows the matched owner, client and thread (and how they were matched), the stripped text, whether it is an
auto-reply (and why), and the intent with its evidence and any proposed new time. Nothing is written: this is
``replies.pipeline.analyse`` on a read-only session. Without a reachable database the match is skipped and the
rest is still shown.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reagenda.settings import Settings


def add_parser(sub: Any) -> None:
    reply = sub.add_parser("reply", help="inspect client replies")
    rsub = reply.add_subparsers(dest="reply_command", required=True)
    ex = rsub.add_parser("explain", help="show how a raw email (.eml) would be handled, without storing it")
    ex.add_argument("file", help="an RFC 5322 message, e.g. saved with 'Show original' / 'Download message'")
    ex.add_argument("--json", action="store_true", help="one JSON object instead of text")
    ex.set_defaults(func=cmd_explain)
    poll = rsub.add_parser("poll", help="read new replies from the IMAP mailbox in IMAP_URL")
    poll.add_argument("--every", type=float, default=0, help="keep polling every N seconds (Ctrl-C stops)")
    poll.set_defaults(func=cmd_poll)


def explain(settings: Settings, raw: bytes) -> dict[str, Any]:
    from reagenda import runtime
    from replies.autoreply import detect
    from replies.intent import classify
    from replies.match import Match
    from replies.pipeline import Analysis, InboundRejected, analyse, body_text, dedup_key_for, parse
    from replies.strip import strip_reply

    try:
        ctx = runtime.build(settings, check=True)
    except runtime.StartupError as exc:
        mail = parse(raw)
        body = body_text(mail)
        text = strip_reply(body)
        subject = str(mail.get("Subject") or "")
        a = Analysis(dedup_key_for(mail, raw), str(mail.get("From") or ""), subject, body, text, Match("none"),
                     detect(mail, subject=subject, text=text), classify(text))
        out = a.as_dict()
        out["match"]["note"] = f"database not reachable, match skipped: {exc}"
        return out
    try:
        with ctx.sessions() as session:
            a = analyse(session, settings, raw, now=ctx.clock.now())
            session.rollback()
            return a.as_dict()
    except InboundRejected:
        raise
    finally:
        ctx.close()


def _text(result: dict[str, Any]) -> str:
    m = result["match"]
    lines = [f"from:        {result['sender']}", f"subject:     {result['subject']}",
             f"matched by:  {m['how']}" + (f" ({m['note']})" if m.get("note") else ""),
             f"owner:       {m['owner']['email'] + ' #' + str(m['owner']['id']) if m.get('owner') else '-'}",
             f"client:      {m['client']['email'] + ' #' + str(m['client']['id']) if m.get('client') else '-'}",
             f"thread:      message #{m['message']['id']} ({m['message']['kind']}: {m['message']['subject']})"
             if m.get("message") else "thread:      -",
             f"auto-reply:  {'yes, ' + result['auto_reply']['reason'] if result['auto_reply']['is_auto'] else 'no'}"]
    intent = result["intent"]
    lines.append(f"intent:      {intent['intent']} ({'clear' if intent['clear'] else 'not clear'})"
                 + (f" - {intent['note']}" if intent["note"] else ""))
    if intent["evidence"]:
        lines.append("evidence:    " + "; ".join(repr(e) for e in intent["evidence"]))
    if intent["suggestion"]:
        lines.append(f"proposed:    {intent['suggestion']} (UTC, a suggestion for the owner)")
    lines.append(f"recorded as: {result['recorded_as']}")
    lines.append("text:")
    lines.extend("    " + ln for ln in (result["text"] or "(empty)").splitlines())
    return "\n".join(lines)


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    """Poll the mailbox once, or every ``--every`` seconds until interrupted."""
    import time

    from reagenda import runtime
    from replies.imap import IMAPError, poll_once

    try:
        ctx = runtime.build(settings, check=True)
    except runtime.StartupError as exc:
        print(f"reagenda: {exc}", file=sys.stderr)
        return 2
    try:
        while True:
            try:
                result = poll_once(ctx)
            except IMAPError as exc:
                print(f"reagenda: {exc}", file=sys.stderr)
                if not args.every:
                    return 2
            else:
                print(f"fetched {result.fetched}, processed {result.processed}, rejected {result.rejected}")
            if not args.every:
                return 0
            time.sleep(args.every)
    finally:
        ctx.close()


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from replies.pipeline import InboundRejected

    path = Path(args.file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"reagenda: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        result = explain(settings, raw)
    except InboundRejected as exc:
        print(f"reagenda: {path} would be rejected: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else _text(result))
    return 0
