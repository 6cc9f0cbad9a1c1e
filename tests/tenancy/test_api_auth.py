from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tenancy.models import ApiKey
from apps.tenancy.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db
URL = "/api/v1/organization/"


def _client(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def assert_401(response, code="unauthenticated"):
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_valid_key_resolves_its_organization(api, organization):
    response = api.get(URL)
    assert response.status_code == 200
    assert response.json()["slug"] == organization.slug
    assert response.json()["niche"] == "fitness"


def test_each_key_sees_its_own_organization(api, other_api, organization, other_organization):
    assert api.get(URL).json()["id"] == str(organization.id)
    assert other_api.get(URL).json()["id"] == str(other_organization.id)


def test_missing_header_is_401():
    assert_401(_client(None).get(URL))


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not-a-key",
        "Bearer sbk_",
        "Bearer sbk_abc",
        "Token sbk_a_b",
    ],
)
def test_malformed_header_is_401(header, organization):
    assert_401(_client(header).get(URL))


def test_wrong_secret_with_a_real_prefix_is_401(organization):
    issued = api_key_create(organization=organization)
    tampered = issued.key[:-4] + ("AAAA" if not issued.key.endswith("AAAA") else "BBBB")
    assert_401(_client(f"Bearer {tampered}").get(URL))


def test_revoked_key_is_401(organization):
    issued = api_key_create(organization=organization)
    api_key_revoke(api_key=issued.api_key)
    response = _client(f"Bearer {issued.key}").get(URL)
    assert_401(response)
    assert "revoked" in response.json()["error"]["message"]


def test_deactivated_organization_is_401(organization):
    issued = api_key_create(organization=organization)
    organization.is_active = False
    organization.save()
    assert_401(_client(f"Bearer {issued.key}").get(URL))


def test_last_used_is_recorded_at_most_once_a_minute(organization, django_assert_num_queries):
    issued = api_key_create(organization=organization)
    client = _client(f"Bearer {issued.key}")
    client.get(URL)
    first = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # the key lookup only: no write within the minute
        assert client.get(URL).status_code == 200
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == first
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last_used_at=first - timedelta(minutes=5))
    client.get(URL)
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at > first - timedelta(minutes=1)


def test_only_a_hash_of_the_key_is_stored(organization):
    issued = api_key_create(organization=organization)
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    secret = issued.key.split("_", 2)[2]
    assert secret not in stored.secret_hash
    assert stored.prefix in issued.key
    assert stored.revoked_at is None
    assert stored.created_at <= timezone.now()
