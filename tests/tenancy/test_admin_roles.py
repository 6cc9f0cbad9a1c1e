"""The role matrix of admin actions and form choices.

An action is offered only to a member who holds one of its roles somewhere, and runs only
when the user holds one of those roles in the organization of EVERY selected row: admin in
B does not make a read-only `user` of A able to write A's rows. Foreign-key choices of
add/change forms come from organizations where the user may write, not merely view.
"""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.decisions.models import ScheduledAction, ScheduledStatus
from apps.events import delivery
from apps.events.models import Delivery, DeliveryStatus
from apps.revenue.models import DuplicateStatus, DuplicateSuggestion
from apps.tenancy.roles import ALL_ROLES, SUPERVISORS, WORKERS, Role
from apps.tenancy.scoping import TenantScopeMixin, action_roles
from apps.tenancy.services import operator_upsert
from tests.conversations import factories as conv
from tests.events.factories import emit_event, endpoint_for
from tests.support.http import Reply

pytestmark = pytest.mark.django_db


def _member(roles: dict) -> Client:
    """A console client for one staff user with `{organization: role}` memberships."""
    email = "-".join(f"{role}.{org.slug}" for org, role in roles.items()) + "@example.com"
    for organization, role in roles.items():
        user = operator_upsert(
            organization=organization, email=email, role=role, password="pw-Secret-123"
        ).user
    client = Client()
    client.force_login(user)
    return client


def _rows(organization, receiver):
    """One row per guarded action in `organization`: a pending scheduled action, an open
    duplicate suggestion, and an event whose only delivery is dead."""
    pair = [conv.contact(organization), conv.contact(organization)]
    first, second = sorted(pair, key=lambda c: c.pk)
    scheduled = ScheduledAction.objects.create(
        organization=organization,
        contact=first,
        kind="follow_up",
        due_at=timezone.now() + timedelta(days=1),
        payload={"type": "follow_up"},
    )
    suggestion = DuplicateSuggestion.objects.create(
        organization=organization, contact=first, other=second, reason="same name", score=40
    )
    endpoint_for(organization, f"{receiver.url}/{organization.slug}")
    receiver.respond(Reply(status=500, body="down"))
    event = emit_event(organization, name=f"dead-{organization.slug}")
    delivery.dispatch_round()
    receiver.respond(Reply(status=200))
    return {"scheduled": scheduled, "suggestion": suggestion, "event": event}


# action → (changelist, the row it acts on, the roles that may run it, "was it done?")
ACTIONS = {
    "cancel": (
        "admin:decisions_scheduledaction_changelist",
        "scheduled",
        SUPERVISORS,
        lambda row: ScheduledAction.objects.get(pk=row.pk).status == ScheduledStatus.CANCELLED,
    ),
    "dismiss_selected": (
        "admin:revenue_duplicatesuggestion_changelist",
        "suggestion",
        WORKERS,
        lambda row: DuplicateSuggestion.objects.get(pk=row.pk).status == DuplicateStatus.DISMISSED,
    ),
    "redeliver": (
        "admin:events_event_changelist",
        "event",
        SUPERVISORS,
        lambda row: not Delivery.objects.filter(event=row, status=DeliveryStatus.DEAD).exists(),
    ),
}


@pytest.fixture
def world(organization, other_organization, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = []
    return {
        organization.slug: _rows(organization, receiver),
        other_organization.slug: _rows(other_organization, receiver),
    }


def _offered(client, changelist) -> set:
    response = client.get(reverse(changelist))
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def _run(client, changelist, action, *rows):
    return client.post(
        reverse(changelist),
        {"action": action, "index": "0", "_selected_action": [str(r.pk) for r in rows]},
        follow=True,
    )


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_role_matrix_in_one_organization(world, organization, role, action):
    changelist, kind, allowed, done = ACTIONS[action]
    client = _member({organization: role})
    row = world[organization.slug][kind]
    assert (action in _offered(client, changelist)) is (role in allowed)
    _run(client, changelist, action, row)
    assert done(row) is (role in allowed)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_role_elsewhere_does_not_authorize_an_action_here(
    world, organization, other_organization, action
):
    """Read-only `user` in A, admin in B: offered (for B), refused on A's rows — also when
    they are mixed with B's — and nothing at all is done."""
    changelist, kind, _, done = ACTIONS[action]
    client = _member({organization: Role.USER, other_organization: Role.ADMIN})
    mine, theirs = world[organization.slug][kind], world[other_organization.slug][kind]
    assert action in _offered(client, changelist)
    for selection in ((mine,), (mine, theirs)):
        response = _run(client, changelist, action, *selection)
        assert response.status_code == 200
        assert "nothing was done" in response.content.decode()
        assert not done(mine) and not done(theirs)
    _run(client, changelist, action, theirs)
    assert done(theirs) and not done(mine)


def test_a_malformed_selected_id_is_refused_not_a_500(world, organization):
    client = _member({organization: Role.ADMIN})
    response = client.post(
        reverse("admin:decisions_scheduledaction_changelist"),
        {"action": "cancel", "index": "0", "_selected_action": ["not-a-uuid"]},
        follow=True,
    )
    assert response.status_code == 200
    assert "do not exist" in response.content.decode()


def _tenant_admins():
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, TenantScopeMixin)
    ]


def test_every_action_of_every_tenant_admin_has_roles_that_exclude_read_only_users():
    for model, model_admin in _tenant_admins():
        for func, name, _ in model_admin._get_base_actions():
            assert Role.USER not in action_roles(model_admin, name, func), (model, name)


def test_a_read_only_member_is_offered_no_action_anywhere(world, organization):
    client = _member({organization: Role.USER})
    checked = 0
    for model, _ in _tenant_admins():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = client.get(url)
        if response.status_code == 403:
            continue
        assert response.status_code == 200, url
        assert response.context["action_form"] is None, (url, _offered(client, url))
        checked += 1
    assert checked >= 10


def test_form_choices_come_only_from_organizations_where_the_user_may_write(
    organization, other_organization
):
    """`user` (read-only) in A, operator in B: the new task form offers B's contacts only."""
    theirs_readable = conv.contact(organization, name="Readable Only")
    writable = conv.contact(other_organization, name="Writable Here")
    client = _member({organization: Role.USER, other_organization: Role.OPERATOR})
    response = client.get(reverse("admin:crm_task_add"))
    assert response.status_code == 200
    fields = response.context["adminform"].form.fields
    assert list(fields["organization"].queryset) == [other_organization]
    assert list(fields["contact"].queryset) == [writable]
    assert theirs_readable not in fields["contact"].queryset
    # and a forged post naming the read-only organization's contact is rejected
    response = client.post(
        reverse("admin:crm_task_add"),
        {
            "organization": str(other_organization.pk),
            "title": "Call back",
            "contact": str(theirs_readable.pk),
        },
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors
