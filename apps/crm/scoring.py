"""Lead scoring from the organization's niche qualification rules. Pure reads, no writes.

Each active `niches.QualificationRule` of the organization's primary niche may fire:

- `answer`: `lead.answers[rule.answer_field]` meets the condition: `{"in": [...]}`
  (case-insensitive; a list answer fires when any item is in), `{"equals": v}`,
  `{"min": n}` / `{"max": n}` for numbers (several keys: all must hold);
- `keyword`: `{"keywords": [...]}` found (case-insensitively, as whole words) in the contact's
  inbound message texts or in the lead's answers;
- `source`: `{"sources": [...]}` contains `lead.source` (case-insensitive);
- `engagement`: `{"min_inbound_messages": n}` and/or `{"has_booking": true|false}` (all hold).

The score is the sum of the fired rules' points; `reasons` lists each fired rule with its
points and why it fired, so a person can see how a lead got its score. A malformed rule
never fires and never raises: rules are content, edited by people.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property

from apps.niches.models import QualificationRule, QualificationRuleKind

logger = logging.getLogger(__name__)

# The keyword rules read the contact's most recent inbound messages, not their whole history.
KEYWORD_MESSAGE_WINDOW = 200
_SNIPPET = 60


@dataclass(frozen=True)
class ScoreResult:
    score: int
    reasons: list[dict]


@dataclass
class _LeadFacts:
    """What the rules look at, loaded lazily (one query per kind of fact, at most)."""

    lead: object

    @cached_property
    def inbound_texts(self) -> list[str]:
        from apps.conversations.models import Direction, Message

        return list(
            Message.objects.filter(
                organization_id=self.lead.organization_id,
                contact_id=self.lead.contact_id,
                direction=Direction.INBOUND,
            )
            .exclude(text="")
            .order_by("-created_at")
            .values_list("text", flat=True)[:KEYWORD_MESSAGE_WINDOW]
        )

    @cached_property
    def inbound_count(self) -> int:
        from apps.conversations.models import Direction, Message

        return Message.objects.filter(
            organization_id=self.lead.organization_id,
            contact_id=self.lead.contact_id,
            direction=Direction.INBOUND,
        ).count()

    @cached_property
    def has_booking(self) -> bool:
        from apps.bookings.models import Booking, BookingStatus

        return (
            Booking.objects.filter(
                organization_id=self.lead.organization_id, contact_id=self.lead.contact_id
            )
            .exclude(status=BookingStatus.CANCELLED)
            .exists()
        )


def rules_for_organization(organization) -> list[QualificationRule]:
    return list(
        QualificationRule.objects.filter(
            niche_id=organization.primary_niche_id, is_active=True
        ).order_by("order", "key")
    )


def lead_score_compute(*, lead, rules: list[QualificationRule] | None = None) -> ScoreResult:
    """Score `lead` against its organization's niche rules. Reads only; idempotent."""
    if rules is None:
        rules = rules_for_organization(lead.organization)
    facts = _LeadFacts(lead)
    score, reasons = 0, []
    for rule in rules:
        try:
            why = _EVALUATORS[rule.kind](rule, lead, facts)
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.warning("qualification rule %s is malformed; skipped", rule.key, exc_info=True)
            continue
        if why is None:
            continue
        score += rule.points
        reasons.append(
            {
                "rule": rule.key,
                "name": rule.name,
                "kind": rule.kind,
                "points": rule.points,
                "why": why,
            }
        )
    return ScoreResult(score=score, reasons=reasons)


# --- evaluators: return why the rule fired, or None ------------------------------------------


def _fold(value) -> str:
    return str(value).strip().casefold()


def _number(value) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        cleaned = re.sub(r"[\s,$€£]", "", value)
        try:
            return Decimal(cleaned)
        except InvalidOperation:
            return None
    return None


_ANSWER_KEYS = ("in", "equals", "min", "max")
_ENGAGEMENT_KEYS = ("min_inbound_messages", "has_booking")


def _show(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _answer(rule, lead, facts) -> str | None:
    condition = rule.condition or {}
    if not rule.answer_field or not condition:
        return None
    value = (lead.answers or {}).get(rule.answer_field)
    if value is None or value == "" or value == []:
        return None
    unknown = set(condition) - set(_ANSWER_KEYS)
    if unknown:
        raise ValueError(f"unknown answer condition {sorted(unknown)[0]!r}")
    checks = []
    for key in (k for k in _ANSWER_KEYS if k in condition):  # stored JSON has no key order
        expected = condition[key]
        if key == "in":
            allowed = {_fold(v) for v in expected}
            items = value if isinstance(value, list) else [value]
            hits = [v for v in items if _fold(v) in allowed]
            if not hits:
                return None
            checks.append(f"is {_show(hits[0])}")
        elif key == "equals":
            if isinstance(expected, str) and isinstance(value, str):
                ok = _fold(value) == _fold(expected)
            else:
                ok = value == expected
            if not ok:
                return None
            checks.append(f"equals {_show(expected)}")
        elif key in ("min", "max"):
            number, bound = _number(value), _number(expected)
            if number is None or bound is None:
                return None
            if (key == "min" and number < bound) or (key == "max" and number > bound):
                return None
            checks.append(f"{number} {'≥' if key == 'min' else '≤'} {bound}")
    return f"answer {rule.answer_field} {' and '.join(checks)}"


def _keyword_pattern(keyword: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(keyword.strip())}(?!\w)", re.IGNORECASE)


def _snippet(text: str, match: re.Match) -> str:
    start = max(0, match.start() - _SNIPPET // 2)
    piece = text[start : start + _SNIPPET].replace("\n", " ")
    return ("…" if start else "") + piece + ("…" if start + _SNIPPET < len(text) else "")


def _keyword(rule, lead, facts) -> str | None:
    keywords = [k for k in (rule.condition or {}).get("keywords", []) if str(k).strip()]
    if not keywords:
        return None
    patterns = [(k, _keyword_pattern(str(k))) for k in keywords]
    answer_texts = [
        (name, str(v))
        for name, value in (lead.answers or {}).items()
        for v in (value if isinstance(value, list) else [value])
        if isinstance(v, str | int | float)
    ]
    for keyword, pattern in patterns:
        for name, text in answer_texts:
            if pattern.search(text):
                return f'keyword "{keyword}" in answer {name}'
    for keyword, pattern in patterns:
        for text in facts.inbound_texts:
            match = pattern.search(text)
            if match:
                return f'keyword "{keyword}" in a message: "{_snippet(text, match)}"'
    return None


def _source(rule, lead, facts) -> str | None:
    sources = {_fold(s) for s in (rule.condition or {}).get("sources", [])}
    if lead.source and _fold(lead.source) in sources:
        return f'source is "{lead.source}"'
    return None


def _engagement(rule, lead, facts) -> str | None:
    condition = rule.condition or {}
    if not condition:
        return None
    unknown = set(condition) - set(_ENGAGEMENT_KEYS)
    if unknown:
        raise ValueError(f"unknown engagement condition {sorted(unknown)[0]!r}")
    checks = []
    for key in (k for k in _ENGAGEMENT_KEYS if k in condition):
        expected = condition[key]
        if key == "min_inbound_messages":
            count = facts.inbound_count
            if count < int(expected):
                return None
            checks.append(f"{count} inbound messages (≥ {int(expected)})")
        elif key == "has_booking":
            if facts.has_booking != bool(expected):
                return None
            checks.append("has a booking" if expected else "has no booking")
    return " and ".join(checks)


_EVALUATORS = {
    QualificationRuleKind.ANSWER: _answer,
    QualificationRuleKind.KEYWORD: _keyword,
    QualificationRuleKind.SOURCE: _source,
    QualificationRuleKind.ENGAGEMENT: _engagement,
}
