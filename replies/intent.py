"""What does a client's reply mean? confirm, cancel, reschedule, running_late, fine_busy or other.

Rules, not a model: every decision comes with the phrases that caused it (``evidence``), so an owner or operator
can see why (``reagenda reply explain``). The text is normalised first (lower case, accents removed, letters
repeated for emphasis collapsed: "siiii" → "si"), so missing accents and shouting do not matter; common typos are
folded into the patterns ("canselar", "confimo").

Safety first: a reply with both cancel and confirm signals is never resolved to either; it is "other" and goes to
the owner. Only ``clear`` intents act on their own (a reply that asks a question, or is ambiguous, is not clear).
A proposed new day or time in a reschedule request is parsed with ``dateparser`` and offered to the owner as a
suggestion, never booked automatically.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

INTENTS = ("confirm", "cancel", "reschedule", "running_late", "fine_busy", "other")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"([a-z])\1{2,}", r"\1", text)  # "siiii" -> "si", "vaaale" -> "vale"
    text = text.replace("’", "'").replace("´", "'")
    return re.sub(r"[ \t]+", " ", text)


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# ---- cancel: the client will not come (and did not ask for another time)
_CANCEL = _rx(
    r"\b(c[ao]n[cs]el\w*|canel\w*|cnacel\w*|ca?ncel\w*)",
    r"\banul(ar|o|a|amos|en|ada|ado|acion)\b",
    r"\bno (me )?(voy a )?(poder|podre|puedo|podemos|podra|podria|va a poder)( \w+){0,3} (ir|asistir|acudir|venir|llegar|hacerla|hacerlo|estar|conectarme)\b",
    r"\bno (voy a|vamos a|podre|podremos) (ir|asistir|acudir|venir)\b",
    r"\bno (asistire|ire|iremos|vendre|acudire)\b",
    r"\b(me|nos) (es|sera|resulta) imposible (ir|asistir|acudir|venir)",
    r"\bno (cuenten|contad|cuentes) conmigo\b",
    r"\bdej(a|e|emos|ar)(la| lo)? (la cita|sin efecto)",
    r"\b(can'?t|cannot|can not|won'?t|will not|wont|unable to|not able to|no longer) (be able to )?(make it|come|attend|go|be there|make the|join)",
    r"\bcall(ing)? (it )?off\b",
    r"\b(count me out|drop (the|my) (appointment|session|booking))\b",
    r"\bno puedo\b.{0,20}\bal final\b",
)
# "I do not want to cancel" / "no hace falta cancelar": negated cancel words remove the signal.
_CANCEL_NEGATED = _rx(
    r"\bno (quiero|hace falta|necesito|vamos a|voy a|es necesario|hay que) (c[ao]n[cs]el\w*|anular)",
    r"\b(don'?t|do not|no need to|not going to|won'?t|never mind,? (don'?t )?) ?(want to |need to )?cancel",
    r"\bsin cancel\w*",
)
# ---- reschedule: another day or time
_RESCHEDULE = _rx(
    r"\b(re ?agend|reprogram|re-?program|reschedul|re-schedul|re schedule)\w*",
    r"\b(cambiar|mover|pasar|trasladar|aplazar|posponer|adelantar|atrasar|retrasar)(la|lo)? (la |el |de )?(cita|hora|fecha|sesion|dia|reunion|clase|consulta)?",
    r"\b(aplaz|pospon|postpon|pospus)\w*",
    r"\b(otro|otra) (dia|hora|fecha|momento|semana|horario)\b",
    r"\b(podemos|podriamos|se puede|se podria|puedo|podria)( \w+){0,2} (pasar|mover|cambiar|dejar|hacer)(la|lo)? (para|al|a la|el|a el|otro|otra|en)\b",
    r"\bmejor (el|la|otro|otra|a las|en|manana|pasado)\b",
    r"\b(move|change|shift|push|bring forward|switch)( it| the| my| our)?( \w+)? (to|appointment|session|booking|time|date|day|meeting)\b",
    r"\b(another|different|other|later|earlier) (day|time|date|slot|week)\b",
    r"\b(could|can) we (do|meet|make it|have it)( it)? (on|at|next|tomorrow|instead|later|earlier)\b",
    r"\bnew (time|date|slot)\b",
    r"\b(push|move|bump|put)( it| this| that| the appointment| the session| our session| my session)? (back|forward|later|earlier)\b",
    r"\b(tienes|tienen|teneis|hay|habria|queda)( algun| otro| un)? (hueco|disponibilidad|sitio)\b",
    r"\binstead\?",
)
# ---- running late
_LATE = _rx(
    r"\b(llego|llegare|llegamos|voy|vamos|ire|estare|salgo|sali|estoy llegando) (un poco |algo |un poquito |unos? )?(\d+ ?(min|minutos|m)\w* )?(tarde|retrasad[oa])",
    r"\b(llego|llegare|estoy|estare|tardo|tardare) (en |a )?(unos? |como )?\d+ ?(min|minutos|m)\b",
    r"\b(me|nos) (retraso|retrase|retrasare|retrasamos|he retrasado|voy a retrasar)\b",
    r"\bvoy con retraso\b",
    r"\b(de camino|en camino|voy para alla|estoy en el (atasco|trafico|metro|bus)|hay (un )?(atasco|trafico))\b",
    r"\b(running|be|being|i'?m|am) (a (bit|little|few minutes) |\d+ ?(min|mins|minutes) |slightly |very )?late\b",
    r"\b(on my way|stuck in traffic|traffic is|held up|few minutes behind|minutes away|be there in \d+)\b",
    r"\brunning (about |around |maybe |like )?(\d+ ?(min|mins|minutes) )?(behind|late)\b",
    r"\b\d+ ?(min|mins|minutes) (behind|late)\b",
)
# ---- confirm: the client will come. Strong phrases act; weak ones ("ok", "vale", "perfecto") only when alone.
_CONFIRM_STRONG = _rx(
    r"\bc[o]?n?f[ir]{1,3}m\w*",
    r"\bcomfirm\w*",
    r"\b(ahi|alli|alla) (estare|estaremos|voy|nos vemos|estamos)\b",
    r"\b(nos|te|le|les) (vemos|veo)\b",
    r"\bcuent(a|en|as) conmigo\b",
    r"\b(alli|ahi) (estare|me tendras)\b",
    r"\b(see you|i'?ll be there|will be there|we'?ll be there|count me in|i'?ll come|will attend|i'?ll attend|i will come)\b",
    r"\b(works for me|sounds good|all set|looking forward)\b",
    r"\b(me|nos) (va|viene) (bien|perfecto|genial)\b",
    r"\b(asistire|ire sin falta|sin falta|alli estare)\b",
    r"^(si|yes|yep|yeah|yup|sure|claro|por supuesto|of course|absolutely|definitely)\b",
    r"\bsi,? (ahi|alli|claro|perfecto|gracias|estare|voy|asistire|confirmo|de acuerdo|vale|todo bien)",
)
_CONFIRM_WEAK = _rx(
    r"^(ok|okay|okey|oki|vale|perfecto|perfect|genial|great|de acuerdo|entendido|recibido|estupendo|"
    r"listo|hecho|bien|good|fine|👍|👌|thanks|gracias|thank you|muchas gracias|ok gracias|ok thanks|"
    r"perfecto gracias|vale gracias|ok perfecto|great thanks|noted)[\s!.,]*(gracias|thanks|thank you|"
    r"muchas gracias|👍|😊|🙂|ok)?[\s!.,😊🙂👍]*$",
)
# ---- fine, just busy (the answer to a ghosting check-in)
_BUSY = _rx(
    r"\b(todo|esta todo|va todo|estoy|estamos) (bien|ok|perfecto)\b",
    r"\b(liad[oa]s?|ocupad[oa]s?|agobiad[oa]s?|hasta arriba|a tope|mucho lio|mucho trabajo|muy liad)",
    r"\b(i'?m|i am|we'?re|all|everything'?s?|everything is) (fine|ok|okay|good|well)\b",
    r"\b(just|been|really|super|very|crazy) (busy|swamped|hectic)\b",
    r"\b(busy|swamped|slammed|hectic)\b",
    r"\b(perdon|disculpa|sorry)( \w+){0,4} (tard\w+ en (contestar|responder)|no (contestar|responder))",
    r"\bsorry for the (late|slow|delayed) (reply|response)\b",
)
_QUESTION_ABOUT_CONFIRM = _rx(
    r"\b(hay que|tengo que|hace falta|debo|necesito|do i need to|should i|how do i|como)( \w+){0,2} confirm\w*[^.!]*\?",
    r"\bconfirm\w*[^.!?]{0,40}\?",
)
# Not sure yet: "no sé si podré", "te confirmo mañana", "I might not make it", "I'll confirm tomorrow".
_UNSURE = _rx(
    r"\b(no se si|no estoy segur[oa]|puede que no|quizas no|quiza no|tal vez no|a lo mejor no)\b",
    r"\bte (lo )?confirmo (manana|luego|mas tarde|despues|en un rato|esta tarde|el)\b",
    r"\b(not sure|might not|may not|maybe not|i'?ll confirm|i will confirm|will let you know|let you know)\b",
)
_CANCEL_POLICY_QUESTION = _rx(
    r"\b(si|if|what if|y si|que pasa si|cuanto|how much|what happens if)( \w+){0,4} (c[ao]n[cs]el\w*|anul\w*)[^.!]*\?",
    r"\b(politica|policy|plazo|deadline)( \w+){0,3} (de )?(c[ao]n[cs]el\w*)",
)


@dataclass(frozen=True)
class Intent:
    name: str
    clear: bool
    evidence: tuple[str, ...] = ()
    suggestion: datetime | None = None  # a proposed new time (reschedule), for the owner to accept or not
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"intent": self.name, "clear": self.clear, "evidence": list(self.evidence),
                "suggestion": self.suggestion.isoformat() if self.suggestion else None, "note": self.note}


def _hits(rx: re.Pattern[str], text: str) -> list[str]:
    return [m.group(0).strip() for m in rx.finditer(text) if m.group(0).strip()]


def classify(text: str, *, now: datetime | None = None, tz: str = "UTC") -> Intent:
    """Classify a stripped reply. ``now``/``tz`` anchor relative dates ("el jueves") in a reschedule proposal."""
    norm = normalise(text).strip()
    if not norm:
        return Intent("other", False, note="empty reply")
    first_part = norm[:600]

    cancel = _hits(_CANCEL, first_part)
    negated = _hits(_CANCEL_NEGATED, first_part)
    if negated:
        cancel = [c for c in cancel if not any(c in n for n in negated)]
    policy_q = _hits(_CANCEL_POLICY_QUESTION, first_part)
    if policy_q:
        cancel = [c for c in cancel if not any(c in q for q in policy_q)]
    # "confirmo la cancelación" / "confirm the cancellation" is a cancel: drop the confirm part of it.
    confirm_cancel = re.search(r"\bconf\w*( que)?( quiero| deseo| vamos a| voy a)? (la |el |my |the )?(c[ao]n[cs]el|anul)",
                               first_part)
    resched = _hits(_RESCHEDULE, first_part)
    late = _hits(_LATE, first_part)
    confirm = [] if confirm_cancel else _hits(_CONFIRM_STRONG, first_part)
    weak = _hits(_CONFIRM_WEAK, first_part.strip())
    busy = _hits(_BUSY, first_part)
    if re.search(r"\b(no|not|nunca|never)( \w+){0,2} (confirm|ir|come|attend|asistir)", first_part) and confirm:
        # "no puedo confirmar", "not coming" etc.: a negated confirmation is never a confirm.
        confirm = [c for c in confirm if not re.match(r"c?on?f", c)]
    questions = _hits(_QUESTION_ABOUT_CONFIRM, first_part)
    unsure = _hits(_UNSURE, first_part)
    # A leading "sí"/"yes" only acknowledges the message; it does not outweigh what follows it.
    only_ack = bool(confirm) and all(re.fullmatch(r"(si|yes|yep|yeah|yup|sure|claro)", c) for c in confirm)

    if resched:
        return Intent("reschedule", True, tuple(resched + cancel), _suggest(text, now, tz))
    if cancel and only_ack:
        return Intent("cancel", True, tuple(cancel), note="a leading yes/sí acknowledges, the text cancels")
    if cancel and (confirm or weak):
        return Intent("other", False, tuple(cancel + confirm + weak),
                      note="both cancel and confirm signals: left to the owner")
    if cancel:
        return Intent("cancel", True, tuple(cancel))
    if late:
        return Intent("running_late", True, tuple(late))
    if policy_q:
        return Intent("other", False, tuple(policy_q), note="a question about the cancellation policy")
    if unsure:
        return Intent("other", False, tuple(unsure), note="the client is not sure yet")
    if busy and only_ack:
        return Intent("fine_busy", True, tuple(busy))
    if confirm:
        if questions:
            return Intent("other", False, tuple(questions), note="a question about confirming, not a confirmation")
        return Intent("confirm", True, tuple(confirm))
    if busy:
        return Intent("fine_busy", True, tuple(busy))
    if weak:
        return Intent("confirm", True, tuple(weak))
    return Intent("other", False, note="no clear intent: left to the owner")


def _suggest(text: str, now: datetime | None, tz: str) -> datetime | None:
    """The first future day/time the client proposed, in UTC, or None. Best effort: the owner decides."""
    try:
        from dateparser.search import search_dates
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    base = (now or datetime.now(ZoneInfo("UTC"))).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": base, "TIMEZONE": tz,
                "RETURN_AS_TIMEZONE_AWARE": True, "TO_TIMEZONE": "UTC"}
    try:
        found = search_dates(text[:300], languages=["es", "en"], settings=settings) or []
    except Exception:  # noqa: BLE001 - a parser failure must not block the reply
        return None
    for phrase, when in found:
        if len(phrase.strip()) < 3 or phrase.strip().isdigit():
            continue
        if now is not None and when <= now:
            continue
        return when
    return None
