"""Intent rules that matter most: safety between cancel and confirm, and the proposed time for a reschedule."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from replies.intent import classify

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # Monday


@pytest.mark.parametrize("text", [
    "Confirmo pero igual tengo que cancelar", "Ok, see you. Actually no, cancel it. Or maybe I'll come",
    "Perfecto, aunque creo que voy a cancelar, ya te confirmo",
])
def test_mixed_cancel_and_confirm_goes_to_the_owner(text):  # type: ignore[no-untyped-def]
    intent = classify(text)
    assert intent.name not in ("cancel", "confirm") or not intent.clear or intent.name == "cancel"
    assert intent.name != "confirm"


@pytest.mark.parametrize("text", ["no hace falta cancelar, ahí estaré", "I don't want to cancel, see you then"])
def test_negated_cancel_is_not_a_cancel(text):  # type: ignore[no-untyped-def]
    assert classify(text).name == "confirm"


def test_reschedule_suggestion_is_parsed_in_the_clients_zone():
    intent = classify("¿Podemos pasarla al jueves a las 17:00?", now=NOW, tz="Europe/Madrid")
    assert intent.name == "reschedule" and intent.clear
    assert intent.suggestion is not None
    assert intent.suggestion.astimezone(timezone.utc) == datetime(2026, 3, 5, 16, 0, tzinfo=timezone.utc)


def test_english_suggestion():
    intent = classify("Could we move it to Friday at 3pm?", now=NOW, tz="Europe/London")
    assert intent.name == "reschedule"
    assert intent.suggestion == datetime(2026, 3, 6, 15, 0, tzinfo=timezone.utc)


def test_unclear_is_never_acted_on():
    for text in ("No", "¿Dónde está el estudio?", "", "Who is this?"):
        intent = classify(text)
        assert intent.name == "other" and not intent.clear
