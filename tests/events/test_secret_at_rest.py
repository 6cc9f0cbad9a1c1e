import pytest
from django.db import connection

from apps.events.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_endpoint_secrets_are_encrypted_at_rest_and_readable_through_the_model(api):
    created = api.post(
        "/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}, format="json"
    ).json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM events_webhookendpoint WHERE id = %s", [created["id"]])
        (stored,) = cursor.fetchone()
    assert secret not in stored and not stored.startswith("whsec_")
    assert WebhookEndpoint.objects.get(pk=created["id"]).secret == secret
