import pytest

from tests.factories import OrganizationFactory


@pytest.fixture
def fitness_rival(db):
    """A second fitness organization: same niche as `organization`, different tenant."""
    return OrganizationFactory(name="Iron Gym", slug="iron", niche="fitness")
