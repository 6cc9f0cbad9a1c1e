# The provider tests' fixtures: fresh channel caches, one channel of each provider.
from tests.providers.conftest import (  # noqa: F401
    _fresh_caches,
    mailgun,
    manychat,
    twilio,
    whatsapp,
)
