"""Normalizing how contacts are identified: phones to E.164, emails lower-cased."""

from __future__ import annotations

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.crm.models import IdentityKind


class InvalidIdentity(ValueError):
    pass


def normalize_phone(raw: str, *, region: str) -> str:
    """E.164 for `raw` (a `whatsapp:` prefix is dropped; national numbers use `region`)."""
    value = (raw or "").strip()
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    if value and value[0].isdigit() and len(value) > 10 and not value.startswith("0"):
        # WhatsApp wa_ids and some providers send international numbers without the "+".
        candidate = "+" + value
        try:
            parsed = phonenumbers.parse(candidate, None)
            if phonenumbers.is_possible_number(parsed):
                return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            pass
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidIdentity(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    value = (raw or "").strip().lower()
    try:
        validate_email(value)
    except ValidationError as exc:
        raise InvalidIdentity(f"{raw!r} is not an email address") from exc
    return value


def normalize_identity(kind: str, value: str, *, region: str) -> str:
    if kind == IdentityKind.PHONE:
        return normalize_phone(value, region=region)
    if kind == IdentityKind.EMAIL:
        return normalize_email(value)
    if kind == IdentityKind.WHATSAPP_ID:
        return "".join(ch for ch in (value or "") if ch.isdigit()) or _blank(kind)
    value = (value or "").strip()
    return value or _blank(kind)


def _blank(kind: str) -> str:
    raise InvalidIdentity(f"empty {kind} identity")
