"""What every engine returns, and the text and time helpers the engines share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from apps.niches.templating import prompt_render


@dataclass
class EngineResult:
    """An engine's proposal, before the compliance guard.

    `facts`: memory facts to record whatever happens; `facts_if_sent`: facts that are only
    true if a message actually goes out (e.g. which question is now waiting for an answer).
    """

    engine: str
    actions: list[dict]
    rationale: str
    intent: str = ""
    facts: dict = field(default_factory=dict)
    facts_if_sent: dict = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    fallback_reason: str = ""


# --- text ------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def normalize(text: str) -> str:
    """Lower case, straight quotes, single spaces."""
    return _SPACES.sub(" ", (text or "").translate(_QUOTES)).strip().casefold()


@lru_cache(maxsize=4096)
def _phrase_re(phrase: str) -> re.Pattern:
    return re.compile(r"(?<![\w])" + re.escape(phrase.casefold()) + r"(?![\w])")


def phrase_search(text: str, phrase: str) -> re.Match | None:
    """Where `phrase` occurs in normalized `text` as whole words (None if it does not)."""
    return _phrase_re(phrase).search(text) if phrase else None


def find_phrase(text: str, phrases) -> str | None:
    """The first of `phrases` found in normalized `text` as whole words, else None."""
    for phrase in phrases:
        if phrase and _phrase_re(phrase).search(text):
            return phrase
    return None


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text)


def render(template: str, variables: dict) -> str:
    return prompt_render(template, variables).strip()


# --- time ------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(value: str | None) -> timedelta:
    """ISO 8601 durations of workflow steps (`PT30M`, `P1D`, `P2DT4H`); zero when absent."""
    match = _DURATION.match(value or "")
    if not match:
        return timedelta(0)
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts)


def parse_iso(value: str | None) -> datetime | None:
    """An RFC 3339 time (`...Z` or with an offset) as an aware datetime; None when invalid."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def clock(value: datetime) -> str:
    """`6:00 PM` (no leading zero, ASCII)."""
    hour = value.hour % 12 or 12
    return f"{hour}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"


def day_label(value: datetime) -> str:
    """`Tuesday, March 4`."""
    return f"{value:%A}, {value:%B} {value.day}"


def slot_label(start: datetime, local_now: datetime) -> str:
    """`Tue 6:00 PM` within the coming week, else `Tue Mar 17, 6:00 PM`."""
    local = start.astimezone(local_now.tzinfo)
    if (local.date() - local_now.date()).days < 6:
        return f"{local:%a} {clock(local)}"
    return f"{local:%a} {local:%b} {local.day}, {clock(local)}"
