"""Qualification answers: extracting them from a message, and the score they would give.

Answer rules (`QualificationRule` kind `answer`) name a lead answer (`answer_field`) and a
condition. A message answers a rule when it contains one of the condition's values (or a
common way of saying it, `phrases.ANSWER_SYNONYMS`); the canonical value is recorded so the
CRM's scoring fires. Budget-style values (`$5k-15k`, `$15k+`) are matched from amounts in
the message. The reply to the question just asked is recorded verbatim when nothing matched.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from apps.decisions.engines.base import normalize, phrase_search
from apps.decisions.engines.phrases import ANSWER_SYNONYMS, SHORT_VALUE_LENGTH

MAX_ANSWER_LENGTH = 200
_MONEY = re.compile(r"\$?\s?(\d[\d,]*(?:\.\d+)?)\s?(k|thousand)?\b", re.IGNORECASE)
# "not urgent", "isn't this week": a negation just before a value means it is not the answer.
_NEGATED = re.compile(r"\b(not|no|isn't|isnt|never|don't|dont|won't|wont)\s+(\w+\s+)?$")
_BUCKET = re.compile(r"^\$?(\d+(?:\.\d+)?)k?\s*(?:-\s*\$?(\d+(?:\.\d+)?)k?|(\+))$", re.IGNORECASE)


def answer_rules(niche) -> list:
    return [r for r in niche.qualification_rules if r.kind == "answer" and r.answer_field]


def _bucket(value: str) -> tuple[Decimal, Decimal | None] | None:
    """`$5k-15k` → (5000, 15000); `$15k+` → (15000, None); else None."""
    match = _BUCKET.match(value.replace(",", "").strip())
    if not match:
        return None
    scale = Decimal(1000) if "k" in value.lower() else Decimal(1)
    low = Decimal(match.group(1)) * scale
    high = Decimal(match.group(2)) * scale if match.group(2) else None
    return low, high


def _amounts(text: str) -> list[Decimal]:
    found = []
    for number, thousands in _MONEY.findall(text):
        try:
            amount = Decimal(number.replace(",", ""))
        except InvalidOperation:
            continue
        found.append(amount * 1000 if thousands else amount)
    return found


def condition_value(condition: dict, text: str, *, pending: bool) -> str | None:
    """The canonical condition value `text` expresses, else None. `pending`: the rule's
    question was the one just asked (short values such as "yes" count only then)."""
    if not isinstance(condition, dict):  # rules are content: a malformed one never matches
        return None
    allowed = condition.get("in", [])
    values = [str(v) for v in allowed] if isinstance(allowed, list) else []
    if "equals" in condition:
        values.append(str(condition["equals"]))
    buckets = [(v, b) for v in values if (b := _bucket(v))]
    if buckets:
        for amount in _amounts(text):
            for value, (low, high) in buckets:
                if amount >= low and (high is None or amount < high):
                    return value
    for value in sorted(values, key=len, reverse=True):
        folded = normalize(value)
        if len(folded) <= SHORT_VALUE_LENGTH and not pending:
            continue
        for phrase in (folded, *ANSWER_SYNONYMS.get(folded, ())):
            match = phrase_search(text, phrase)
            if match and not _NEGATED.search(text[: match.start()]):
                return value
    return None


def answers_extract(
    niche, text: str, *, known: dict, pending_field: str | None, capture_raw: bool
) -> dict:
    """Answers `text` gives to the niche's unanswered answer rules. `capture_raw`: record the
    message itself as the answer to `pending_field` when no value matched. Pure."""
    text_n = normalize(text)
    found: dict = {}
    for rule in answer_rules(niche):
        field = rule.answer_field
        if field in known and field != pending_field:
            continue
        value = condition_value(rule.condition, text_n, pending=field == pending_field)
        if value is not None:
            found[field] = value
    if capture_raw and pending_field and pending_field not in found and text.strip():
        found[pending_field] = text.strip()[:MAX_ANSWER_LENGTH]
    return found


def _fold(value) -> str:
    return str(value).strip().casefold()


def _number(value) -> Decimal | None:
    try:
        return Decimal(re.sub(r"[^\d.\-]", "", str(value)))
    except InvalidOperation:
        return None


def answer_fires(condition: dict, value) -> bool:
    """Whether an answer meets an answer rule's condition (the CRM scoring semantics)."""
    if value in (None, "", []):
        return False
    items = value if isinstance(value, list) else [value]
    if not isinstance(condition, dict):
        return False
    if "in" in condition:
        if not isinstance(condition["in"], list):
            return False
        allowed = {_fold(v) for v in condition["in"]}
        if not any(_fold(i) in allowed for i in items):
            return False
    if "equals" in condition and not any(_fold(i) == _fold(condition["equals"]) for i in items):
        return False
    for key, compare in (("min", lambda n, b: n >= b), ("max", lambda n, b: n <= b)):
        if key in condition:
            number = _number(items[0])
            if number is None or not compare(number, Decimal(str(condition[key]))):
                return False
    return bool(condition)


def score_project(niche, lead, answers: dict) -> int | None:
    """The lead's score once `answers` are merged in: its current score, adjusted for the
    answer rules that start or stop firing. None without a lead."""
    if lead is None:
        return None
    merged = {**(lead.answers or {}), **answers}
    fired = {r.get("rule") for r in (lead.score_reasons or []) if isinstance(r, dict)}
    score = lead.score
    for rule in answer_rules(niche):
        before = rule.key in fired
        after = answer_fires(rule.condition, merged.get(rule.answer_field))
        if after and not before:
            score += rule.points
        elif before and not after:
            score -= rule.points
    return score
