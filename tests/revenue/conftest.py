import pytest

from apps.revenue.limits import plan_cache_clear
from apps.revenue.plans import plans_ensure_defaults


@pytest.fixture(autouse=True)
def _plans(request):
    """The default plans exist (transactional tests elsewhere truncate the seeded rows), and no
    plan edit made by a test outlives it in this process's plan cache."""
    plan_cache_clear()
    if "db" in request.fixturenames or "transactional_db" in request.fixturenames:
        plans_ensure_defaults()
    yield
    plan_cache_clear()


@pytest.fixture
def contact(organization):
    from tests.revenue import factories

    return factories.contact(organization, name="Maya Chen", email="maya@acme-dental.com")
