"""Membership roles and what each may do.

- admin: everything in the organization: members, API keys, channels, webhooks, settings.
- moderator: works and supervises conversations, CRM and bookings; receives escalations.
- operator: works conversations (the inbox) and the CRM records they touch.
- user: read-mostly access to the CRM and conversations.
"""

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MODERATOR = "moderator", "Moderator"
    USER = "user", "User"
    OPERATOR = "operator", "Operator"


ALL_ROLES = frozenset(Role.values)
MANAGERS = frozenset({Role.ADMIN})
SUPERVISORS = frozenset({Role.ADMIN, Role.MODERATOR})
WORKERS = frozenset({Role.ADMIN, Role.MODERATOR, Role.OPERATOR})
