import pytest

from apps.providers import selectors
from tests.providers import factories


@pytest.fixture(autouse=True)
def _fresh_caches():
    selectors.keyword_cache_clear()
    selectors._channel_cache.clear()
    yield
    selectors._channel_cache.clear()


@pytest.fixture
def whatsapp(organization):
    return factories.whatsapp_channel(organization)


@pytest.fixture
def mailgun(organization):
    return factories.mailgun_channel(organization)


@pytest.fixture
def manychat(organization):
    return factories.manychat_channel(organization)
