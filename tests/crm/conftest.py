import pytest

from tests.factories import staff_user


@pytest.fixture(autouse=True)
def _only_test_rules(db):
    """Scoring tests write their own rules: switch off any seeded niche content (rolled back)."""
    from apps.niches.models import QualificationRule

    QualificationRule.objects.update(is_active=False)


@pytest.fixture
def member(organization):
    return staff_user(organization, role="operator", email="owner@pulse.example")


@pytest.fixture
def other_member(other_organization):
    return staff_user(other_organization, role="operator", email="agent@harbor.example")
