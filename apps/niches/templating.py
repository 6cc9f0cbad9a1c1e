"""Prompt templates: `{name}` placeholders, parsed and rendered safely.

Syntax: `{first_name}` is a variable (letters, digits, underscores; not starting with a
digit); `{{` and `}}` are literal braces. Nothing else is interpreted: no attribute or index
access, no format specs (unlike `str.format`, a template can never reach into objects).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_EMPTY = "\x00"  # marks where a variable rendered empty, so the text around it can be tidied
_EMPTY_BEFORE_PUNCTUATION = re.compile(r",?[ \t]*\x00[ \t]*(?=[,.!?;:])")
_EMPTY_ELSEWHERE = re.compile(r"[ \t]*\x00[ \t]*")
_LINE_EDGE_SPACES = re.compile(r"(?m)^[ \t]+|[ \t]+$")


def template_variables(template: str) -> list[str]:
    """The variable names used by `template`, in order of first use, without duplicates."""
    names: list[str] = []
    for match in _TOKEN.finditer(template):
        name = match.group(1)
        if name and name not in names:
            names.append(name)
    return names


def template_errors(template: str) -> list[str]:
    """Problems that would show up as stray braces in a sent message (empty list = valid)."""
    errors = []
    for match in _TOKEN.finditer(template):
        if match.group(0) in ("{", "}"):
            snippet = template[max(0, match.start() - 15) : match.end() + 15]
            errors.append(
                f"Unmatched or invalid brace at position {match.start()} (near {snippet!r}); "
                "use {name} for a variable and {{ or }} for a literal brace."
            )
    return errors


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_as_text(item) for item in value if item not in (None, ""))
    return str(value).replace(_EMPTY, "")


def prompt_render(template: str, variables: Mapping[str, object] | None = None) -> str:
    """Fill `template`'s `{name}` placeholders from `variables`. Never raises for content.

    - A missing variable, or one whose value is None or blank, renders as nothing, and the
      text around it is tidied: "Hi {first_name}, it's Jess" → "Hi, it's Jess";
      "Thanks, {first_name}." → "Thanks."; no doubled spaces are left behind.
    - Variables the template does not use are ignored.
    - A list or tuple renders as its items joined by ", " (e.g. `slots`).
    - Other values render with `str()`. Placeholders are never evaluated beyond a name
      lookup, and a value's own braces are kept as they are (no second substitution).
    - Stray braces (see `template_errors`) are left as written.
    Pure function; no side effects.
    """
    variables = variables or {}
    any_empty = False

    def substitute(match: re.Match) -> str:
        nonlocal any_empty
        matched = match.group(0)
        if matched in ("{{", "}}"):
            return matched[0]
        name = match.group(1)
        if name is None:
            return matched  # a stray brace, kept literally
        text = _as_text(variables.get(name))
        if not text.strip():
            any_empty = True
            return _EMPTY
        return text

    rendered = _TOKEN.sub(substitute, template)
    if any_empty:
        rendered = _EMPTY_BEFORE_PUNCTUATION.sub("", rendered)
        rendered = _EMPTY_ELSEWHERE.sub(" ", rendered)
        rendered = _LINE_EDGE_SPACES.sub("", rendered)
    return rendered


def whatsapp_placeholders(body: str) -> list[int]:
    """The `{{1}}`-style parameter numbers of a WhatsApp template body, in order of use."""
    return [int(n) for n in re.findall(r"\{\{(\d+)\}\}", body)]
