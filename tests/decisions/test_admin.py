"""The console: the decision log and the other decision admins are tenant-scoped; the
simulator shows a decision without any side effect and only for one's own contacts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.decisions.credits import credits_account
from apps.decisions.models import (
    ConversationMemory,
    CreditAccount,
    CreditLedgerEntry,
    Decision,
    ScheduledAction,
)
from apps.events.models import Event
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


@pytest.fixture
def world(make_staff_client):
    mine = f.organization("fitness", name="Mine Studio")
    theirs = f.organization("real_estate", name="Their Realty")
    me = f.contact(mine, name="Mine Contact")
    them = f.contact(theirs, name="Their Contact")
    f.lead(mine, me)
    f.lead(theirs, them)
    mine_decision = f.decide(mine, me, trigger="lead.created")
    theirs_decision = f.decide(theirs, them, trigger="lead.created")
    from apps.decisions.execution import decision_execute

    decision_execute(decision=mine_decision)
    decision_execute(decision=theirs_decision)
    return {
        "mine": mine,
        "theirs": theirs,
        "me": me,
        "them": them,
        "mine_decision": mine_decision,
        "theirs_decision": theirs_decision,
        "operator": make_staff_client(mine, role="operator"),
        "user": make_staff_client(mine, role="user"),
    }


@pytest.mark.parametrize(
    ("model", "mine", "theirs"),
    [
        ("decision", "Mine Contact", "Their Contact"),
        ("creditaccount", "Mine Studio", "Their Realty"),
        ("creditledgerentry", "Mine Studio", "Their Realty"),
        ("conversationmemory", "Mine Contact", "Their Contact"),
        ("scheduledaction", "Mine Contact", "Their Contact"),
    ],
)
def test_changelists_are_scoped(world, model, mine, theirs):
    response = world["operator"].get(reverse(f"admin:decisions_{model}_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert mine in content and theirs not in content


def test_decision_detail_shows_actions_and_compliance(world):
    url = reverse("admin:decisions_decision_change", args=[world["mine_decision"].pk])
    response = world["user"].get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert "&quot;schedule_follow_up&quot;" in content
    assert "rules_checked" in content
    other = reverse("admin:decisions_decision_change", args=[world["theirs_decision"].pk])
    assert world["operator"].get(other).status_code in (302, 404)


def test_decisions_are_read_only_in_the_console(world):
    assert world["operator"].get(reverse("admin:decisions_decision_add")).status_code == 403
    url = reverse("admin:decisions_decision_delete", args=[world["mine_decision"].pk])
    assert world["operator"].post(url, {"post": "yes"}).status_code == 403
    assert Decision.objects.filter(pk=world["mine_decision"].pk).exists()


def test_scheduled_actions_can_be_cancelled_by_supervisors_only(world, make_staff_client):
    pending = ScheduledAction.objects.filter(organization=world["mine"]).first()
    url = reverse("admin:decisions_scheduledaction_changelist")
    data = {"action": "cancel", "_selected_action": [str(pending.pk)]}
    world["operator"].post(url, data)
    pending.refresh_from_db()
    assert pending.status == "pending"
    moderator = make_staff_client(world["mine"], role="moderator", email="mod@mine.example")
    moderator.post(url, data)
    pending.refresh_from_db()
    assert pending.status == "cancelled"


def _counts():
    return (
        Decision.objects.count(),
        Event.objects.count(),
        CreditLedgerEntry.objects.count(),
        ConversationMemory.objects.count(),
        CreditAccount.objects.count(),
    )


def test_simulator_shows_the_decision_without_side_effects(make_staff_client):
    org = f.organization("med_spa", name="Glow")
    who = f.contact(org, name="Maya Chen")
    client = make_staff_client(org, role="user")
    url = reverse("admin:decision_simulator")
    page = client.get(url)
    assert page.status_code == 200
    assert "Maya Chen" in page.content.decode()
    before = _counts()
    response = client.post(
        url,
        {
            "organization": str(org.pk),
            "contact": str(who.pk),
            "trigger": "message.received",
            "message": "I'm pregnant, is botox ok?",
            "engine": "rules",
        },
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "escalate_to_human" in content
    assert "handoff-clinical" in content
    assert "none (simulation)" in content
    assert _counts() == before
    assert not CreditAccount.objects.filter(organization=org).exists()


def test_simulator_shows_compliance_interventions(make_staff_client):
    from apps.niches.services import prompt_override_set

    org = f.organization("real_estate")
    prompt_override_set(
        organization=org,
        key="greeting",
        template="Hi {first_name}! Our homes are perfect for young professionals.",
    )
    who = f.contact(org)
    client = make_staff_client(org, role="operator")
    response = client.post(
        reverse("admin:decision_simulator"),
        {"contact": str(who.pk), "trigger": "message.received", "message": "hi", "engine": "rules"},
    )
    content = response.content.decode()
    assert "real-estate-no-steering" in content and "blocked" in content


def test_simulator_refuses_another_organizations_contact(world):
    response = world["operator"].post(
        reverse("admin:decision_simulator"),
        {
            "organization": str(world["mine"].pk),
            "contact": str(world["them"].pk),
            "trigger": "manual",
            "engine": "rules",
        },
    )
    assert response.status_code == 404
    response = world["operator"].get(
        reverse("admin:decision_simulator"), {"organization": str(world["theirs"].pk)}
    )
    assert response.status_code == 404


def test_simulator_needs_a_login(client):
    response = client.get(reverse("admin:decision_simulator"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_top_up_action_is_for_superusers(world, django_user_model):
    account = credits_account(organization=world["mine"])
    url = reverse("admin:decisions_creditaccount_changelist")
    world["operator"].post(url, {"action": "top_up_1000", "_selected_action": [str(account.pk)]})
    account.refresh_from_db()
    assert account.topup_balance == 0
    from django.test import Client

    admin = django_user_model.objects.create_superuser(
        email="root@example.com", password="x-Secret-1"
    )
    superuser = Client()
    superuser.force_login(admin)
    superuser.post(url, {"action": "top_up_1000", "_selected_action": [str(account.pk)]})
    account.refresh_from_db()
    assert account.topup_balance == 1000


@pytest.mark.parametrize(
    ("role", "may_run_llm"),
    [("admin", True), ("moderator", True), ("operator", True), ("user", False)],
)
def test_only_members_who_may_act_run_the_llm_engine(make_staff_client, llm, role, may_run_llm):
    """The LLM engine costs money per call: a read-only `user` views the simulator and runs
    the rules engine, but is not offered the LLM engine and is refused it (403, no call)."""
    from tests.support.http import Reply

    llm.respond(Reply(status=503, body="busy"))  # any answer: we count the calls
    org = f.organization("fitness", name="Gate Studio")
    who = f.contact(org, name="Gina Gate")
    client = make_staff_client(org, role=role)
    url = reverse("admin:decision_simulator")
    page = client.get(url)
    assert page.status_code == 200
    engines = [value for value, _ in page.context["form"].fields["engine"].choices]
    assert ("llm" in engines) is may_run_llm
    post = {"organization": str(org.pk), "contact": str(who.pk), "trigger": "manual"}
    response = client.post(url, {**post, "engine": "llm"})
    assert response.status_code == (200 if may_run_llm else 403)
    assert bool(llm.requests) is may_run_llm
    assert client.post(url, {**post, "engine": "rules"}).status_code == 200
