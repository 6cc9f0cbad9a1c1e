import pytest

from tests.bookings.factories import make_contact, make_resource, make_type


@pytest.fixture
def consult(organization):
    """A 30-minute type on a 30-minute grid, no notice or buffers (tests pass `now`)."""
    return make_type(organization)


@pytest.fixture
def coach(organization, consult):
    """Works every day 09:00-17:00 in the organization's zone (America/New_York)."""
    return make_resource(organization, consult, name="Coach A")


@pytest.fixture
def contact(organization):
    return make_contact(organization)
