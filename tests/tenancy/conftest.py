import pytest
from django.core.management import call_command

from apps.events.services import webhook_endpoint_create
from apps.tenancy.models import Organization


@pytest.fixture
def demo_organizations(db):
    """The two demo organizations (`seed_demo`: rows in every app), each with a webhook
    endpoint: (mine, theirs) for the tenancy sweeps."""
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    mine = Organization.objects.get(slug="demo")
    theirs = Organization.objects.get(slug="harbor-realty")
    for org in (mine, theirs):
        webhook_endpoint_create(
            organization=org, url=f"http://127.0.0.1:9/{org.slug}", event_types=["*"]
        )
    return mine, theirs
