"""Sweep of the console: every registered tenant-scoped admin (`TenantScopeMixin`).

For each: the changelist shows only the member's organization's rows, and the change and
delete URLs of another organization's row — or of a malformed id — are "not found" (the
admin's redirect to its index, or a 404), never a 200 and never a 500. The admins come from
the admin site's registry, so a new one is swept automatically. Both demo organizations
are seeded (`seed_demo`), plus a webhook endpoint with a delivery and a few rows the demo
does not make, so that most admins have a foreign row to probe.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.crm.models import Contact
from apps.decisions.models import ScheduledAction
from apps.events.services import emit
from apps.tenancy.roles import Role
from apps.tenancy.scoping import TenantScopeMixin
from apps.tenancy.services import api_key_create, operator_upsert

pytestmark = pytest.mark.django_db


def _tenant_admins():
    return sorted(
        (
            (model, model_admin)
            for model, model_admin in admin.site._registry.items()
            if isinstance(model_admin, TenantScopeMixin)
        ),
        key=lambda pair: pair[0]._meta.label,
    )


def _rows_of(model_admin, organization):
    lookup = model_admin.organization_lookup
    return model_admin.model._default_manager.filter(**{lookup: organization.pk}).order_by("pk")


def _organization_id(model_admin, obj):
    return model_admin._object_organization_id(obj)


@pytest.fixture
def world(demo_organizations):
    mine, theirs = demo_organizations
    for org in (mine, theirs):
        contact = Contact.objects.filter(organization=org).first()
        emit(  # fans out to the endpoint: a delivery per organization
            organization=org,
            type="contact.created",
            subject_type="contact",
            subject_id=str(contact.pk),
            data={"contact_id": str(contact.pk), "name": contact.name},
        )
        api_key_create(organization=org, name=f"key-{org.slug}")
        ScheduledAction.objects.create(
            organization=org,
            contact=contact,
            kind="follow_up",
            due_at=timezone.now() + timedelta(days=1),
            payload={},
        )
    operator_upsert(organization=theirs, email="boss@harbor.example", role=Role.ADMIN)
    clients = {}
    for role in Role.values:
        user = operator_upsert(
            organization=mine, email=f"sweep-{role}@example.com", role=role, password="pw-1-Ab"
        ).user
        client = Client()
        client.force_login(user)
        clients[role] = client
    return {"mine": mine, "theirs": theirs, "clients": clients}


def _url(model, name, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{name}", args=args)


@pytest.mark.parametrize("role", Role.values)
def test_changelists_show_only_own_organization_rows(world, role):
    client, mine = world["clients"][role], world["mine"]
    shown = 0
    for model, model_admin in _tenant_admins():
        response = client.get(_url(model, "changelist"))
        assert response.status_code in (200, 403), (model, response.status_code)
        if response.status_code == 403:
            continue
        rows = list(response.context["cl"].result_list)
        foreign = [r.pk for r in rows if _organization_id(model_admin, r) != mine.pk]
        assert foreign == [], (model, role, foreign)
        shown += len(rows)
    assert shown > 0


def _missing_pk(model) -> str:
    """A well-formed primary key that no row has."""
    return (
        "2147483000"
        if model._meta.pk.get_internal_type().endswith("AutoField")
        else (str(uuid.uuid4()))
    )


def _answer(response) -> tuple:
    return response.status_code, response.get("Location")


@pytest.mark.parametrize("role", Role.values)
def test_foreign_and_malformed_objects_are_not_found(world, role):
    """Another organization's row answers exactly like a row that does not exist (the
    admin's redirect, or a 403 when the role may not use that view at all): no oracle,
    never a 200, never a 500. A malformed id is the same."""
    client, theirs = world["clients"][role], world["theirs"]
    probed = set()
    for model, model_admin in _tenant_admins():
        foreign = _rows_of(model_admin, theirs).first()
        for view in ("change", "delete", "history"):
            missing = client.get(_url(model, view, _missing_pk(model)))
            assert missing.status_code in (302, 403, 404), (model, view, missing.status_code)
            if missing.status_code == 302:
                assert missing["Location"] == "/admin/", (model, view, missing["Location"])
            for target in ["not-a-uuid", "0"] + ([str(foreign.pk)] if foreign else []):
                url = _url(model, view, target)
                assert _answer(client.get(url)) == _answer(missing), url
        if foreign is None:
            continue
        probed.add(model._meta.label)
        # a forged POST to the foreign row's change / delete URL changes nothing
        before = model._default_manager.filter(pk=foreign.pk).values().first()
        for view in ("change", "delete"):
            response = client.post(_url(model, view, foreign.pk), {"post": "yes"})
            assert response.status_code in (302, 403, 404), (model, view, response.status_code)
        assert model._default_manager.filter(pk=foreign.pk).values().first() == before
    assert len(probed) >= 25, sorted(probed)


def test_a_superuser_sees_both_organizations(world, django_user_model):
    root = django_user_model.objects.create_superuser(email="root@example.com", password="x-1-Ab")
    client = Client()
    client.force_login(root)
    response = client.get(_url(Contact, "changelist"))
    organizations = {c.organization_id for c in response.context["cl"].result_list}
    assert organizations == {world["mine"].pk, world["theirs"].pk}
