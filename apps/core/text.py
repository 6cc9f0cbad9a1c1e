"""Strings that every layer can carry: PostgreSQL text and jsonb, UTF-8 JSON responses."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(value: str) -> str:
    """`value` without NUL characters (PostgreSQL rejects them) and with each lone UTF-16
    surrogate (which JSON's `\\ud800` escapes can produce, and UTF-8 cannot encode) replaced
    by U+FFFD, so the rest of the text is kept."""
    return encodable(value.replace("\x00", ""))


def encodable(value: str) -> str:
    """`value` with lone surrogates replaced by U+FFFD (NUL kept): safe to render as UTF-8."""
    return _SURROGATE.sub(REPLACEMENT, value) if _SURROGATE.search(value) else value
