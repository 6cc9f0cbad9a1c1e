import pytest

from tests.providers import factories
from tests.providers.conftest import _fresh_caches  # noqa: F401 - autouse for this package too


@pytest.fixture
def twilio(organization):
    return factories.twilio_channel(organization)
