"""Niche admin: shared content is read-only for non-superusers; an organization's overrides and
templates are visible and editable only within that organization."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.niches.models import (
    AgentPack,
    ComplianceRule,
    Niche,
    PlatformTemplate,
    Prompt,
    Workflow,
)
from apps.niches.selectors import niche_context
from tests.niches.factories import override

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "/admin/niches/niche/",
    "/admin/niches/prompt/",
    "/admin/niches/workflow/",
    "/admin/niches/qualificationrule/",
    "/admin/niches/compliancerule/",
    "/admin/niches/objection/",
    "/admin/niches/agentpack/",
    "/admin/niches/workflowtemplate/",
    "/admin/niches/platformtemplate/",
]


@pytest.fixture
def world(organization, fitness_rival, make_staff_client):
    mine = override(organization, "greeting", "Hey {first_name}! MINE-OVERRIDE")
    theirs = override(fitness_rival, "greeting", "Yo {first_name}! THEIR-OVERRIDE")
    their_template = PlatformTemplate.objects.create(
        organization=fitness_rival,
        channel="whatsapp",
        purpose="follow_up",
        name="iron_follow_up",
        body="Hi {{1}}, THEIR-TEMPLATE",
        variables=["first_name"],
    )
    make_staff_client(fitness_rival, role="admin", email="boss@iron.example")
    return {
        "admin": make_staff_client(organization, role="admin"),
        "mine": mine,
        "theirs": theirs,
        "their_template": their_template,
    }


@pytest.fixture
def root():
    user = get_user_model().objects.create_superuser(email="root@example.com", password="x")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("url", CHANGELISTS)
def test_every_changelist_renders_for_members_and_superusers(world, root, url):
    assert world["admin"].get(url).status_code == 200
    assert root.get(url).status_code == 200
    assert world["admin"].get(url + "?q=a").status_code == 200


def test_prompt_list_shows_shared_rows_and_my_overrides_only(world):
    response = world["admin"].get("/admin/niches/prompt/?q=greeting")
    ids = {p.pk for p in response.context["cl"].result_list}
    assert world["mine"].pk in ids and world["theirs"].pk not in ids
    assert Prompt.objects.get(niche__slug="fitness", key="greeting", organization=None).pk in ids
    everything = world["admin"].get("/admin/niches/prompt/?owner=organization")
    assert [p.pk for p in everything.context["cl"].result_list] == [world["mine"].pk]


def test_foreign_override_cannot_be_opened_changed_or_deleted(world):
    admin, theirs = world["admin"], world["theirs"]
    for url in (
        f"/admin/niches/prompt/{theirs.pk}/change/",
        f"/admin/niches/prompt/{theirs.pk}/delete/",
    ):
        response = admin.get(url, follow=True)
        assert "THEIR-OVERRIDE" not in response.content.decode()
        assert response.redirect_chain[-1][0] == "/admin/"
    admin.post(f"/admin/niches/prompt/{theirs.pk}/change/", {"template": "Hacked {first_name}"})
    admin.post(
        "/admin/niches/prompt/",
        {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"},
    )
    theirs.refresh_from_db()
    assert "THEIR-OVERRIDE" in theirs.template


def test_foreign_platform_template_is_invisible(world):
    admin, theirs = world["admin"], world["their_template"]
    body = admin.get("/admin/niches/platformtemplate/").content.decode()
    assert "iron_follow_up" not in body and "sb_follow_up" in body
    response = admin.get(f"/admin/niches/platformtemplate/{theirs.pk}/change/", follow=True)
    assert "THEIR-TEMPLATE" not in response.content.decode()


def test_organization_choices_are_only_mine(world, organization):
    for url in ("/admin/niches/prompt/add/", "/admin/niches/platformtemplate/add/"):
        response = world["admin"].get(url)
        field = response.context["adminform"].form.fields["organization"]
        assert [str(c[0]) for c in field.choices if c[0]] == [str(organization.pk)]
        assert "Iron Gym" not in response.content.decode()


def test_cannot_add_an_override_for_a_foreign_organization(world, fitness_rival):
    niche = Niche.objects.get(slug="fitness")
    response = world["admin"].post(
        "/admin/niches/prompt/add/",
        {
            "organization": str(fitness_rival.pk),
            "niche": niche.pk,
            "key": "reminder",
            "channel": "",
            "template": "{booking_date} {booking_time}",
        },
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Prompt.objects.filter(organization=fitness_rival, key="reminder").exists()


def test_adding_an_override_goes_through_the_service(world, organization):
    niche = Niche.objects.get(slug="fitness")
    niche_context(organization=organization)
    response = world["admin"].post(
        "/admin/niches/prompt/add/",
        {
            "organization": str(organization.pk),
            "niche": niche.pk,
            "key": "no-show",
            "channel": "",
            "template": "We missed you, {first_name}! Free times: {slots}",
        },
    )
    assert response.status_code == 302
    created = Prompt.objects.get(organization=organization, key="no-show")
    assert created.purpose == "no_show" and created.based_on_version == 1
    assert created.variables == ["first_name", "slots"]
    assert niche_context(organization=organization).prompt("no-show").is_override


def test_invalid_override_shows_the_error_and_saves_nothing(world, organization):
    niche = Niche.objects.get(slug="fitness")
    response = world["admin"].post(
        "/admin/niches/prompt/add/",
        {
            "organization": str(organization.pk),
            "niche": niche.pk,
            "key": "booking-offer",
            "channel": "",
            "template": "Book now, {nickname}!",
        },
    )
    assert response.status_code == 200
    assert "Unknown variable" in response.content.decode()
    assert not Prompt.objects.filter(organization=organization, key="booking-offer").exists()


def test_editing_and_deleting_my_override(world, organization):
    mine = world["mine"]
    response = world["admin"].post(
        f"/admin/niches/prompt/{mine.pk}/change/",
        {"channel": "whatsapp", "template": "Hello again {first_name}"},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.template == "Hello again {first_name}" and mine.version == 2
    assert niche_context(organization=organization).prompt("greeting").template == mine.template
    response = world["admin"].post(f"/admin/niches/prompt/{mine.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Prompt.objects.filter(pk=mine.pk).exists()
    assert not niche_context(organization=organization).prompt("greeting").is_override


def test_shared_content_is_read_only_for_members(world):
    admin = world["admin"]
    shared = Prompt.objects.get(niche__slug="fitness", key="greeting", organization=None)
    rule = ComplianceRule.objects.get(key="quiet-hours-sms-whatsapp")
    for url in (
        f"/admin/niches/prompt/{shared.pk}/change/",
        f"/admin/niches/compliancerule/{rule.pk}/change/",
        f"/admin/niches/workflow/{Workflow.objects.first().pk}/change/",
        f"/admin/niches/agentpack/{AgentPack.objects.first().pk}/change/",
    ):
        response = admin.get(url)
        assert response.status_code == 200
        assert 'name="_save"' not in response.content.decode()
    assert (
        admin.post(
            f"/admin/niches/prompt/{shared.pk}/change/",
            {"purpose": "greeting", "template": "Hacked", "is_active": "on"},
        ).status_code
        == 403
    )
    assert admin.post(f"/admin/niches/compliancerule/{rule.pk}/change/", {}).status_code == 403
    assert admin.get(f"/admin/niches/prompt/{shared.pk}/delete/").status_code == 403
    assert admin.get("/admin/niches/compliancerule/add/").status_code == 403
    shared.refresh_from_db()
    assert shared.template != "Hacked"


def test_operators_read_overrides_but_cannot_edit_them(world, organization, make_staff_client):
    operator = make_staff_client(organization, role="operator")
    mine = world["mine"]
    assert operator.get("/admin/niches/prompt/").status_code == 200
    response = operator.get(f"/admin/niches/prompt/{mine.pk}/change/")
    assert response.status_code == 200 and 'name="_save"' not in response.content.decode()
    assert operator.get("/admin/niches/prompt/add/").status_code == 403
    assert (
        operator.post(f"/admin/niches/prompt/{mine.pk}/change/", {"template": "x"}).status_code
        == 403
    )


def test_staff_without_membership_sees_nothing(world):
    lonely = get_user_model().objects.create_user(
        email="lonely@example.com", password="x", is_staff=True
    )
    client = Client()
    client.force_login(lonely)
    for url in CHANGELISTS:
        assert client.get(url).status_code == 403


def test_superuser_hot_fix_bumps_version_and_invalidates(world, root, organization):
    shared = Prompt.objects.get(niche__slug="fitness", key="reminder", organization=None)
    niche_context(organization=organization)
    response = root.post(
        f"/admin/niches/prompt/{shared.pk}/change/",
        {
            "purpose": "reminder",
            "channel": "",
            "template": "See you {booking_date} at {booking_time}, {first_name}!",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    shared.refresh_from_db()
    assert shared.version == 2 and shared.variables == [
        "booking_date",
        "booking_time",
        "first_name",
    ]
    assert niche_context(organization=organization).prompt("reminder").version == 2


def test_superuser_edit_of_shared_content_invalidates_contexts(world, root, organization):
    rule = ComplianceRule.objects.get(key="quiet-hours-sms-whatsapp")
    assert niche_context(organization=organization).compliance_rules_of("quiet_hours")
    response = root.post(
        f"/admin/niches/compliancerule/{rule.pk}/change/",
        {
            "name": rule.name,
            "description": rule.description,
            "kind": rule.kind,
            "severity": rule.severity,
            "pattern": "",
            "replacement": "",
            "channels": "sms,whatsapp",
            "config": json.dumps(rule.config),
        },  # is_active unticked
    )
    assert response.status_code == 302
    assert niche_context(organization=organization).compliance_rules_of("quiet_hours") == ()


def test_superuser_compliance_edit_is_validated(world, root):
    rule = ComplianceRule.objects.get(key="fitness-no-medical-advice")
    response = root.post(
        f"/admin/niches/compliancerule/{rule.pk}/change/",
        {
            "name": rule.name,
            "description": rule.description,
            "kind": rule.kind,
            "severity": rule.severity,
            "pattern": "(unclosed",
            "replacement": "",
            "channels": "",
            "config": "{}",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    assert "Not a valid regular expression" in response.content.decode()


def test_agent_pack_prompt_choices_never_include_overrides(world, root):
    pack = AgentPack.objects.get(niche__slug="fitness")
    response = root.get(f"/admin/niches/agentpack/{pack.pk}/change/")
    choices = {
        int(c[0].value) for c in response.context["adminform"].form.fields["prompts"].choices
    }
    assert world["mine"].pk not in choices and world["theirs"].pk not in choices
    assert len(choices) == Prompt.objects.filter(organization__isnull=True).count()


def test_every_change_view_renders_for_members_and_superusers(world, root):
    from apps.niches import models

    for model in (
        models.Niche,
        models.Prompt,
        models.Workflow,
        models.QualificationRule,
        models.ComplianceRule,
        models.Objection,
        models.AgentPack,
        models.WorkflowTemplate,
        models.PlatformTemplate,
    ):
        objects = [model.objects.order_by("pk").first()]
        if model is models.Prompt:
            objects.append(world["mine"])
        for obj in objects:
            url = f"/admin/niches/{model._meta.model_name}/{obj.pk}/change/"
            assert root.get(url).status_code == 200, url
            assert world["admin"].get(url).status_code == 200, url
    assert root.get("/admin/niches/prompt/add/").status_code == 200
    assert world["admin"].get("/admin/niches/platformtemplate/add/").status_code == 200
