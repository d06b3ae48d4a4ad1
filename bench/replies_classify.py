"""How fast the reply path is without the database: strip + auto-reply check + intent over the test corpus.

    .venv/bin/python bench/replies_classify.py [ROUNDS]

Prints the corpus accuracy and replies per second (one core). dateparser runs only for reschedule requests.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replies.autoreply import detect  # noqa: E402
from replies.intent import classify  # noqa: E402
from replies.strip import strip_reply  # noqa: E402
from tests.test_replies_corpus import load_corpus, run_corpus  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    entries = load_corpus()
    now = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    accuracy, wrong, crossed = run_corpus()
    start = time.perf_counter()
    for _ in range(rounds):
        for _expected, _lang, raw in entries:
            text = strip_reply(raw)
            detect(None, subject="Re: Recordatorio", text=text)
            classify(text, now=now, tz="Europe/Madrid")
    elapsed = time.perf_counter() - start
    n = rounds * len(entries)
    print(f"corpus: {len(entries)} replies, {accuracy:.1%} correct, {len(crossed)} cancel/confirm confusions")
    print(f"throughput: {n / elapsed:.0f} replies/s ({elapsed / n * 1000:.2f} ms each) over {n} replies")


if __name__ == "__main__":
    main()
