"""Choices shared by several apps."""

from django.db import models


class Channel(models.TextChoices):
    """How a message travels to or from a contact (independent of the provider carrying it)."""

    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    EMAIL = "email", "Email"
    MANYCHAT = "manychat", "ManyChat"
    API = "api", "API (custom channel)"


class Provider(models.TextChoices):
    TWILIO = "twilio", "Twilio"
    WHATSAPP = "whatsapp", "WhatsApp Cloud API"
    MANYCHAT = "manychat", "ManyChat"
    MAILGUN = "mailgun", "Mailgun"
