"""Demo data: a credit account and a first decision per demo lead, idempotently."""

import pytest

from apps.crm.demo import seed_demo as crm_seed_demo
from apps.decisions.demo import seed_demo
from apps.decisions.models import CreditAccount, Decision
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


def test_seed_demo_is_idempotent():
    org = f.organization("fitness")
    crm_seed_demo(organization=org)
    seed_demo(organization=org)
    decisions = Decision.objects.filter(organization=org).count()
    assert decisions >= 1
    seed_demo(organization=org)
    assert Decision.objects.filter(organization=org).count() == decisions
    assert CreditAccount.objects.filter(organization=org).count() == 1
