"""Secrets encrypted at rest: provider credentials, webhook signing secrets.

Fernet with a key from FIELD_ENCRYPTION_KEY (several comma-separated keys rotate: the first
encrypts, all decrypt) or, when unset, derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models


def _derive(secret: str) -> bytes:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"switchboard-fields", info=b"credentials"
    ).derive(secret.encode())
    return base64.urlsafe_b64encode(key)


@lru_cache(maxsize=4)
def _fernet(field_key: str, secret_key: str) -> MultiFernet:
    # FIELD_ENCRYPTION_KEY may list several comma-separated secrets: the first encrypts,
    # all decrypt (key rotation). Without it, a key is derived from SECRET_KEY.
    secrets = [s.strip() for s in field_key.split(",") if s.strip()] or [secret_key]
    return MultiFernet([Fernet(_derive(s)) for s in secrets])


def fernet() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)


@lru_cache(maxsize=2048)
def decrypt_text(token: str) -> str:
    """Plain text of a token made by `encrypt_text` (memoized: hot paths decrypt the same
    few secrets over and over)."""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("a secret cannot be decrypted: was FIELD_ENCRYPTION_KEY changed?") from exc


def encrypt_text(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


class EncryptedTextField(models.TextField):
    """A string stored encrypted; reads decrypt. Empty stays empty (not a secret)."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return decrypt_text(value)

    def get_prep_value(self, value):
        if not value:
            return value
        return encrypt_text(value)


class EncryptedJSONField(models.TextField):
    """A dict stored encrypted; reads decrypt. Not queryable by content, by design."""

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        try:
            return json.loads(fernet().decrypt(value.encode()))
        except InvalidToken as exc:
            raise ValueError(
                "credentials cannot be decrypted: was FIELD_ENCRYPTION_KEY changed?"
            ) from exc

    def to_python(self, value):
        if value is None or isinstance(value, dict):
            return value
        return json.loads(value)

    def get_prep_value(self, value):
        if value is None:
            return None
        return fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()
