"""The operator CLI through the real `manage.py`, as an operator (or an outside tool) runs it."""

import json
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from apps.tenancy.models import ApiKey, Membership, Organization, User
from tests.support.workers import ROOT, subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args: str) -> subprocess.CompletedProcess:
    import os

    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=subprocess_database_url(),
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_usage_error(result, fragment: str):
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def test_create_organization_json(niches_loaded):
    result = manage("create_organization", "--name", "Glow Med Spa", "--niche", "med_spa", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"id", "slug"}
    organization = Organization.objects.get(pk=payload["id"])
    assert organization.slug == payload["slug"] == "glow-med-spa"
    assert organization.primary_niche.slug == "med_spa"


def test_create_organization_provisions_the_niche_defaults(niches_loaded):
    from apps.bookings.models import AppointmentType, Resource

    result = manage("create_organization", "--name", "Fix It", "--niche", "local_service", "--json")
    assert result.returncode == 0, result.stderr
    org_id = json.loads(result.stdout)["id"]
    assert AppointmentType.objects.filter(organization_id=org_id, is_active=True).exists()
    assert Resource.objects.filter(organization_id=org_id).exists()


def test_create_organization_explicit_slug_and_human_output(niches_loaded):
    result = manage(
        "create_organization", "--name", "Keys & Co", "--niche", "real_estate", "--slug", "keys"
    )
    assert result.returncode == 0
    assert "keys" in result.stdout
    assert Organization.objects.filter(slug="keys").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--name", "X", "--niche", "bakery"], "invalid choice: 'bakery'"),
        (["--niche", "fitness"], "--name"),
        (["--name", "X", "--niche", "fitness", "--slug", "Not A Slug"], "slug"),
        (["--name", "X", "--niche", "fitness", "--timezone", "Mars/Olympus"], "time zone"),
        (["--name", "   ", "--niche", "fitness"], "name"),
    ],
)
def test_create_organization_bad_arguments_change_nothing(niches_loaded, args, fragment):
    before = Organization.objects.count()
    assert_usage_error(manage("create_organization", *args, "--json"), fragment)
    assert Organization.objects.count() == before


def test_duplicate_slug_is_a_clear_error(organization):
    result = manage(
        "create_organization", "--name", "Y", "--niche", "fitness", "--slug", organization.slug
    )
    assert_usage_error(result, "already exists")


def test_create_api_key_json_and_the_key_works(organization):
    result = manage("create_api_key", "--org", organization.slug, "--name", "n8n", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"id", "key"}
    assert ApiKey.objects.get(pk=payload["id"]).name == "n8n"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {payload['key']}")
    assert client.get("/api/v1/organization/").json()["slug"] == organization.slug


def test_create_api_key_unknown_org(niches_loaded):
    assert_usage_error(manage("create_api_key", "--org", "nope", "--json"), "nope")
    assert not ApiKey.objects.exists()


def test_create_operator_then_log_in(organization, client):
    result = manage(
        "create_operator",
        "--org",
        organization.slug,
        "--email",
        "Sam@Example.com",
        "--role",
        "operator",
        "--password",
        "correct-horse-9",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["email"] == "sam@example.com"
    user = User.objects.get(email="sam@example.com")
    assert user.is_staff and not user.is_superuser
    assert Membership.objects.get(user=user).role == "operator"
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "SAM@example.com", "password": "correct-horse-9"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_create_operator_is_idempotent_and_updates_the_role(organization):
    args = ["create_operator", "--org", organization.slug, "--email", "a@example.com"]
    first = json.loads(manage(*args, "--role", "operator", "--json").stdout)
    assert first["created"] is True and first["password"]
    second = json.loads(manage(*args, "--role", "moderator", "--json").stdout)
    assert second["created"] is False and "password" not in second
    assert Membership.objects.get(user__email="a@example.com").role == "moderator"
    assert User.objects.filter(email="a@example.com").count() == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--email", "a@example.com", "--role", "owner"], "invalid choice: 'owner'"),
        (["--email", "not-an-email", "--role", "operator"], "email"),
    ],
)
def test_create_operator_bad_arguments(organization, args, fragment):
    assert_usage_error(manage("create_operator", "--org", organization.slug, *args), fragment)
    assert not User.objects.exists()


def test_create_operator_unknown_org(niches_loaded):
    assert_usage_error(
        manage("create_operator", "--org", "ghost", "--email", "a@example.com", "--role", "admin"),
        "ghost",
    )
