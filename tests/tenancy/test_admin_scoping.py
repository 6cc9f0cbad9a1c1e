"""Staff see only their organizations' rows in the console; superusers see everything."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client

from apps.events.services import emit
from apps.tenancy.models import ApiKey, Membership
from apps.tenancy.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(organization, other_organization, make_staff_client):
    keys = {
        "mine": api_key_create(organization=organization, name="mine-key").api_key,
        "theirs": api_key_create(organization=other_organization, name="their-key").api_key,
    }
    with transaction.atomic():
        for org in (organization, other_organization):
            cid = str(uuid.uuid4())
            emit(
                organization=org,
                type="contact.created",
                subject_type="contact",
                subject_id=cid,
                data={"contact_id": cid, "name": f"contact-of-{org.slug}"},
            )
    make_staff_client(other_organization, role="admin", email="boss@harbor.example")
    admin = make_staff_client(organization, role="admin")
    return {"admin": admin, "keys": keys}


CHANGELISTS = {
    "/admin/tenancy/organization/": ("Pulse Fitness", "Harbor Realty"),
    "/admin/tenancy/apikey/": ("mine-key", "their-key"),
    "/admin/tenancy/membership/": ("admin-pulse@example.com", "boss@harbor.example"),
    "/admin/events/event/": ("contact.created", None),
}


@pytest.mark.parametrize("url", list(CHANGELISTS))
def test_changelists_show_only_my_organization(world, url):
    mine, theirs = CHANGELISTS[url]
    response = world["admin"].get(url)
    assert response.status_code == 200
    assert mine in response.content.decode()
    if theirs:
        assert theirs not in response.content.decode()


def test_event_log_counts_only_my_events(world, organization):
    response = world["admin"].get("/admin/events/event/")
    assert len(response.context["cl"].result_list) == 1
    assert all(e.organization_id == organization.id for e in response.context["cl"].result_list)


def test_foreign_objects_cannot_be_opened_by_guessing_urls(world, other_organization):
    their_key = world["keys"]["theirs"]
    admin = world["admin"]
    for url in (
        f"/admin/tenancy/apikey/{their_key.pk}/change/",
        f"/admin/tenancy/apikey/{their_key.pk}/delete/",
        f"/admin/tenancy/organization/{other_organization.pk}/change/",
    ):
        response = admin.get(url, follow=True)
        assert "their-key" not in response.content.decode()
        assert "Harbor Realty" not in response.content.decode()
        assert response.redirect_chain and response.redirect_chain[-1][0] == "/admin/"


def test_actions_cannot_touch_foreign_rows(world):
    their_key = world["keys"]["theirs"]
    response = world["admin"].post(
        "/admin/tenancy/apikey/",
        {
            "action": "revoke",
            "_selected_action": [str(their_key.pk), str(world["keys"]["mine"].pk)],
        },
    )
    assert response.status_code == 302
    their_key.refresh_from_db()
    assert their_key.revoked_at is None
    assert ApiKey.objects.get(pk=world["keys"]["mine"].pk).revoked_at is not None


def test_organization_choices_are_only_mine(world):
    response = world["admin"].get("/admin/tenancy/apikey/add/")
    choices = [
        str(c[0]) for c in response.context["adminform"].form.fields["organization"].choices if c[0]
    ]
    assert len(choices) == 1
    assert "Harbor" not in response.content.decode()


def test_adding_a_key_shows_it_once(world, organization):
    response = world["admin"].post(
        "/admin/tenancy/apikey/add/",
        {"organization": str(organization.pk), "name": "from-admin"},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("sbk_" in m for m in messages)
    assert ApiKey.objects.get(name="from-admin").organization == organization


def test_cannot_add_a_key_to_a_foreign_organization(world, other_organization):
    response = world["admin"].post(
        "/admin/tenancy/apikey/add/", {"organization": str(other_organization.pk), "name": "sneaky"}
    )
    assert response.status_code == 200  # the form is shown again with an error
    assert "Select a valid choice" in response.content.decode()
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_membership_add_creates_staff_in_my_organization(world, organization):
    response = world["admin"].post(
        "/admin/tenancy/membership/add/",
        {
            "organization": str(organization.pk),
            "email": "new@pulse.example",
            "role": "operator",
            "is_available": "on",
            "max_open_conversations": "10",
        },
        follow=True,
    )
    assert response.status_code == 200
    membership = Membership.objects.get(user__email="new@pulse.example")
    assert membership.organization == organization and membership.max_open_conversations == 10
    assert membership.user.is_staff


@pytest.mark.parametrize("url", ["/admin/tenancy/apikey/", "/admin/tenancy/membership/"])
def test_operators_cannot_manage_keys_or_members(organization, make_staff_client, url):
    operator = make_staff_client(organization, role="operator")
    assert operator.get(url).status_code == 403


def test_operator_sees_events_but_not_user_accounts(organization, make_staff_client):
    operator = make_staff_client(organization, role="operator")
    assert operator.get("/admin/events/event/").status_code == 200
    assert operator.get("/admin/tenancy/user/").status_code == 403


def test_superuser_sees_all_organizations(world):
    root = get_user_model().objects.create_superuser(email="root@example.com", password="x")
    client = Client()
    client.force_login(root)
    body = client.get("/admin/tenancy/apikey/").content.decode()
    assert "mine-key" in body and "their-key" in body


def test_staff_without_membership_sees_nothing(world):
    lonely = get_user_model().objects.create_user(
        email="lonely@example.com", password="x", is_staff=True
    )
    client = Client()
    client.force_login(lonely)
    assert client.get("/admin/tenancy/apikey/").status_code == 403
    assert client.get("/admin/events/event/").status_code == 403


def test_admin_login_is_throttled_after_repeated_failures(organization, settings):
    from tests.factories import staff_user

    staff_user(
        organization, role="operator", email="victim@example.com", password="right-password-1"
    )
    client = Client()
    wrong = {"username": "victim@example.com", "password": "wrong"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/admin/login/", wrong).status_code == 200  # the form, with an error
    assert client.post("/admin/login/", wrong).status_code == 429
    response = client.post(
        "/admin/login/", {"username": "victim@example.com", "password": "right-password-1"}
    )
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
