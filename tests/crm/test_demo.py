import pytest

from apps.crm.demo import DEMO, seed_demo
from apps.crm.models import Contact, Deal, Lead, Note, Pipeline, Task
from apps.events.models import Event
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def counts(organization):
    return [
        m.objects.filter(organization=organization).count()
        for m in (Pipeline, Contact, Lead, Deal, Task, Note, Event)
    ]


@pytest.mark.parametrize("niche", list(DEMO))
def test_seed_demo_is_idempotent_for_every_niche(niche):
    organization = OrganizationFactory(niche=niche)
    seed_demo(organization=organization)
    first = counts(organization)
    assert first[0] == 1 and first[1] >= 3 and first[3] >= 3 and first[4] >= 1
    seed_demo(organization=organization)
    assert counts(organization) == first
