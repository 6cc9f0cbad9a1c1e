"""Intent detection for the rules engine: deterministic, ordered, explainable.

`intent_detect` checks, in this order (the first hit wins): whole-message keywords (STOP,
START, HELP: the message ingress acts on them), opt-out phrases, a request for a person,
"are you a bot", niche escalations (clinical, legal, safety), a health concern (fitness),
complaints, fair-housing questions (real estate), cancel, reschedule, picking one of the
offered slots, an objection from the niche's library (its trigger phrases), "not
interested", a price question, a booking request, thanks, a greeting; otherwise the message
is an answer (to the question waiting for one) or unclear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from apps.decisions.engines import phrases
from apps.decisions.engines.base import find_phrase, normalize, words


@dataclass(frozen=True)
class Intent:
    name: str
    detail: str = ""  # the phrase, objection key or keyword that decided it
    priority: str = "normal"
    slot_index: int | None = None


_WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
_ORDINALS = {
    "first": 0,
    "1st": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "last": -1,
    "earliest": 0,
    "latest": -1,
}
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?(?![\w%$])")
_BARE_NUMBER = re.compile(r"^\s*#?([1-9])\s*[.!)]?\s*$")


def _times(text: str) -> list[tuple[int, int, str | None]]:
    found = []
    for hour, minute, meridiem in _TIME.findall(text):
        hour_i = int(hour)
        if hour_i > 23 or (not minute and not meridiem):
            continue
        found.append((hour_i, int(minute or 0), (meridiem or "").replace(".", "") or None))
    return found


def slot_pick(text: str, offered: list[dict], tz, now: datetime) -> int | None:
    """The index of the offered slot the message picks (by day, time or order), else None.

    Several slots matching is ambiguous (None), except for an ordinal ("the first one").
    """
    if not offered:
        return None
    text_n = normalize(text)
    bare = _BARE_NUMBER.match(text_n)
    if bare and int(bare.group(1)) <= len(offered):
        return int(bare.group(1)) - 1
    tokens = words(text_n)
    for token in tokens:
        if token in _ORDINALS:
            index = _ORDINALS[token]
            return index if index < len(offered) else None
    starts = [
        datetime.fromisoformat(s["start"].replace("Z", "+00:00")).astimezone(tz) for s in offered
    ]
    days = {_WEEKDAYS[t] for t in tokens if t in _WEEKDAYS}
    today = now.astimezone(tz).date()
    if "today" in tokens:
        days.add(today.weekday())
    if "tomorrow" in tokens:
        days.add((today.weekday() + 1) % 7)
    times = _times(text_n)
    if not days and not times:
        if len(offered) == 1 and find_phrase(text_n, phrases.AFFIRM + phrases.ANY_SLOT):
            return 0
        if find_phrase(text_n, phrases.ANY_SLOT):
            return 0
        return None

    def matches(start: datetime) -> bool:
        if days and start.weekday() not in days:
            return False
        for hour, minute, meridiem in times:
            hour24 = hour
            if meridiem == "pm" and hour < 12:
                hour24 = hour + 12
            elif meridiem == "am" and hour == 12:
                hour24 = 0
            candidates = {hour24} if meridiem or hour > 12 else {hour, (hour + 12) % 24}
            if start.hour in candidates and start.minute == minute:
                return True
        return not times

    hits = [i for i, start in enumerate(starts) if matches(start)]
    return hits[0] if len(hits) == 1 else None


def keyword_form(text: str) -> str:
    """Whole-message keyword form (as the niches' opt-out keywords are compared): trimmed,
    upper case, single spaces, surrounding punctuation removed."""
    text = re.sub(r"\s+", " ", text or "").strip().upper()
    return re.sub(r"^[^\w]+|[^\w]+$", "", text)


def intent_detect(text: str, *, niche, offered: list[dict], tz, now: datetime) -> Intent:
    """Classify an inbound message (see the module docstring). Pure."""
    if not text.strip():
        return Intent("empty")
    keyword = keyword_form(text)
    keywords = niche.keywords
    for kind in ("stop", "start", "help"):
        if keyword and keyword in keywords.get(kind, ()):
            return Intent(f"keyword_{kind}", keyword)
    text_n = normalize(text)
    slug = niche.niche.slug
    if hit := find_phrase(text_n, phrases.OPT_OUT):
        return Intent("opt_out", hit)
    if hit := find_phrase(text_n, phrases.HUMAN_REQUEST):
        return Intent("human_request", hit)
    if hit := find_phrase(text_n, phrases.BOT_QUESTION):
        return Intent("bot_question", hit)
    if slug in phrases.ESCALATE:
        priority, sensitive = phrases.ESCALATE[slug]
        if hit := find_phrase(text_n, sensitive):
            return Intent("escalate", hit, priority=priority)
    if hit := find_phrase(text_n, phrases.HEALTH_CONCERN.get(slug, ())):
        return Intent("health_concern", hit)
    if hit := find_phrase(text_n, phrases.COMPLAINT):
        return Intent("complaint", hit, priority="high")
    if hit := find_phrase(text_n, phrases.FAIR_HOUSING_QUESTIONS.get(slug, ())):
        return Intent("fair_housing_question", hit)
    if hit := find_phrase(text_n, phrases.CANCEL):
        return Intent("cancel", hit)
    if hit := find_phrase(text_n, phrases.RESCHEDULE):
        return Intent("reschedule", hit)
    picked = slot_pick(text, offered, tz, now)
    if picked is not None:
        return Intent("book", "picked an offered slot", slot_index=picked)
    for objection in niche.objections:
        if hit := find_phrase(text_n, objection.trigger_phrases):
            return Intent("objection", objection.key)
    if hit := find_phrase(text_n, phrases.NOT_INTERESTED):
        return Intent("not_interested", hit)
    if hit := find_phrase(text_n, phrases.PRICE):
        return Intent("price_question", hit)
    if hit := find_phrase(text_n, phrases.BOOK):
        return Intent("book", hit)
    if offered and find_phrase(text_n, phrases.AFFIRM):
        return Intent("book", "agreed to the offered times")
    tokens = words(text_n)
    if len(tokens) <= 4 and find_phrase(text_n, phrases.THANKS):
        return Intent("thanks")
    if tokens and len(tokens) <= 5 and find_phrase(text_n, phrases.GREETING):
        return Intent("greeting")
    return Intent("answer")
