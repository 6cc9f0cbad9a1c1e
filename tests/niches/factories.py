"""Arrange niche state through the services, like production code does."""

from __future__ import annotations

from apps.niches.models import Prompt
from apps.niches.services import prompt_override_set

# Every variable of the vocabulary, with realistic values.
SAMPLE_VARIABLES = {
    "first_name": "Dana",
    "business_name": "Pulse Fitness",
    "agent_name": "Jess",
    "appointment_type": "Free trial class",
    "slots": ["Tue 6:00 PM", "Wed 7:00 AM", "Thu 12:15 PM"],
    "booking_date": "Tuesday, March 4",
    "booking_time": "6:00 PM",
}


def override(organization, key: str = "greeting", template: str | None = None, **kwargs) -> Prompt:
    template = template or f"Hey {{first_name}}! {organization.slug}-override greeting."
    return prompt_override_set(organization=organization, key=key, template=template, **kwargs)
