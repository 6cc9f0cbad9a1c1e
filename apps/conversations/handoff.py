"""Does an inbound message ask for a person? A cheap check that runs on the ingress hot path.

Conservative on purpose: only explicit requests ("can I talk to a human", "real person
please", "speak to an agent"), so an ordinary message ("my agent said...", "human
resources") never takes a conversation away from the AI agent. The decision engine has
its own, richer intent detection; this rule is the inbox's safety net that works even
when no decision is asked for.
"""

from __future__ import annotations

import re

_PERSON = (
    r"(?:a |an |the |your |some )?(?:real |live |actual )?"
    r"(?:human(?!\s+resources)|person|someone|somebody|agent|representative|rep|operator|"
    r"manager|staff(?: member)?|team member|customer service|support)"
)
_PATTERNS = [
    # "can I talk to a human", "I want to speak with someone", "connect me to an agent"
    rf"\b(?:talk|speak|chat|connect|transfer|put)\s+(?:me\s+)?(?:to|with|through to)\s+{_PERSON}\b",
    # "real person please", "a live agent", "an actual human"
    r"\b(?:real|live|actual)\s+(?:human|person|agent|representative)\b",
    # "human please", "human!", "agent please"
    r"^\s*(?:a\s+)?(?:human|person|agent|operator|representative)\s*(?:please|pls|now)?\s*[.!?]*\s*$",
    # "are you a bot? I want a human", "I need a human", "get me a person"
    r"\b(?:want|need|get me|give me|prefer)\s+(?:to\s+(?:talk|speak)\s+(?:to|with)\s+)?"
    r"(?:a |an )(?:human|real person|person|representative|operator)\b",
    # Spanish, the second language of many of our customers' markets
    r"\b(?:hablar|comunicarme)\s+con\s+(?:una\s+|un\s+)?(?:persona|humano|agente|asesor)\b",
]
_REGEX = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)
MAX_SCANNED = 1000


def asks_for_human(text: str) -> bool:
    """True when the message explicitly asks for a person. Pure; microseconds."""
    return bool(text) and _REGEX.search(text[:MAX_SCANNED]) is not None
