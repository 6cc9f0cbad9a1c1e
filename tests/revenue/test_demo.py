import pytest

from apps.bookings.demo import seed_demo as bookings_demo
from apps.crm.demo import seed_demo as crm_demo
from apps.revenue.demo import seed_demo
from apps.revenue.models import Invoice, Payment, PriceRule, RevenueEntry, Sequence
from apps.tenancy.services import organization_provision_defaults
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def counts(organization):
    return [
        m.objects.filter(organization=organization).count()
        for m in (Invoice, Payment, PriceRule, RevenueEntry, Sequence)
    ]


@pytest.mark.parametrize("niche", ["fitness", "med_spa", "real_estate"])
def test_seed_demo_is_idempotent(niche):
    organization = OrganizationFactory(niche=niche)
    organization_provision_defaults(organization=organization)
    crm_demo(organization=organization)
    bookings_demo(organization=organization)
    seed_demo(organization=organization)
    first = counts(organization)
    assert first[0] == 3 and first[1] == 2 and first[4] == 1
    statuses = set(
        Invoice.objects.filter(organization=organization).values_list("status", flat=True)
    )
    assert statuses == {"paid", "sent", "overdue"}
    seed_demo(organization=organization)
    assert counts(organization) == first
