"""The reply corpus: ≥ 90% of realistic replies classified right, and never a cancel taken for a confirm or back.

Each reply goes through the same path as a real one: ``strip_reply`` then ``classify``. The accuracy is printed
(run with ``-s`` to see it) and is reported in docs/channels.md.
"""
from __future__ import annotations

from pathlib import Path

from replies.intent import classify
from replies.strip import strip_reply

CORPUS = Path(__file__).parent / "replies_corpus" / "replies.txt"


def load_corpus() -> list[tuple[str, str, str]]:
    """(expected intent, language, raw text) for every entry."""
    entries: list[tuple[str, str, str]] = []
    head: tuple[str, str] | None = None
    lines: list[str] = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and head is None:
            continue
        if line.startswith("=== "):
            if head:
                entries.append((*head, "\n".join(lines).strip("\n")))
            _, intent, lang = line.split()
            head, lines = (intent, lang), []
        else:
            lines.append(line)
    if head:
        entries.append((*head, "\n".join(lines).strip("\n")))
    return entries


def run_corpus() -> tuple[float, list[str], list[str]]:
    entries = load_corpus()
    wrong, crossed = [], []
    for expected, lang, raw in entries:
        got = classify(strip_reply(raw)).name
        if got != expected:
            wrong.append(f"[{lang}] expected {expected}, got {got}: {raw.splitlines()[0]!r}")
        if {got, expected} == {"cancel", "confirm"}:
            crossed.append(raw)
    return 1 - len(wrong) / len(entries), wrong, crossed


def test_corpus_is_big_enough_and_half_spanish():
    entries = load_corpus()
    assert len(entries) >= 80
    assert sum(1 for _, lang, _ in entries if lang == "es") >= len(entries) / 2


def test_corpus_accuracy_and_no_cancel_confirm_confusion():
    accuracy, wrong, crossed = run_corpus()
    print(f"\nreply corpus: {accuracy:.1%} correct over {len(load_corpus())} replies")
    for w in wrong:
        print("  ", w)
    assert crossed == [], f"cancel/confirm confusion: {crossed}"
    assert accuracy >= 0.90, "\n".join(wrong)
