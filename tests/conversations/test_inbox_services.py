"""Inbox services and rules: round robin with capacity, backlog sweep, escalation, SLA
breaches (reassign / escalate, exactly once), snooze wake-up, read state per operator."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations import selectors, services
from apps.conversations.models import (
    ActivityKind,
    Conversation,
    ConversationActivity,
    InboxSettings,
    Message,
    SlaBreach,
)
from apps.core.errors import NotFound, Unprocessable, ValidationFailed
from apps.crm.services import contact_set_consent
from apps.events.models import Event
from tests.conversations import factories as f
from tests.providers import factories as pf

pytestmark = pytest.mark.django_db


def events(organization, type_):
    return list(Event.objects.filter(organization=organization, type=type_).order_by("sequence"))


def assignee_of(conversation):
    return Conversation.objects.values_list("assignee_id", flat=True).get(pk=conversation.pk)


# --- assignment ---------------------------------------------------------------------------------


def test_round_robin_takes_turns_and_respects_capacity(organization):
    alice = f.member(organization, email="alice@example.com", capacity=2)
    bob = f.member(organization, email="bob@example.com", capacity=1)
    f.member(organization, email="away@example.com", available=False)
    f.member(organization, role="user", email="viewer@example.com")  # cannot work conversations
    conversations = [f.conversation(organization) for _ in range(4)]
    picked = [
        services.conversation_auto_assign(organization=organization, conversation_id=c.pk)
        for c in conversations
    ]
    first, second = sorted([alice.pk, bob.pk], key=lambda u: u.int)
    # turns by user id; bob is full after one, alice after two; the fourth waits
    assert picked[:3] == [first, second, alice.pk]
    assert picked[3] is None
    assert assignee_of(conversations[3]) is None
    assigned = events(organization, "conversation.assigned")
    assert len(assigned) == 3
    assert assigned[0].data["reason"] == "auto-assigned (round robin)"
    assert assigned[0].data["assignee_id"] == str(first)


def test_auto_assign_is_idempotent_and_follows_settings(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    InboxSettings.objects.create(organization=organization, auto_assign="off")
    assert (
        services.conversation_auto_assign(
            organization=organization, conversation_id=conversation.pk
        )
        is None
    )
    InboxSettings.objects.filter(organization=organization).update(auto_assign="handed_over")
    assert (
        services.conversation_auto_assign(
            organization=organization, conversation_id=conversation.pk
        )
        is None
    )
    Conversation.objects.filter(pk=conversation.pk).update(agent_active=False)
    assert (
        services.conversation_auto_assign(
            organization=organization, conversation_id=conversation.pk
        )
        == operator.pk
    )
    assert (
        services.conversation_auto_assign(
            organization=organization, conversation_id=conversation.pk
        )
        is None
    )
    assert len(events(organization, "conversation.assigned")) == 1


def test_backlog_sweep_assigns_oldest_waiting_first_when_capacity_frees(organization):
    operator = f.member(organization, capacity=1)
    now = timezone.now()
    newest = f.conversation(organization, now=now - timedelta(minutes=1))
    oldest = f.conversation(organization, now=now - timedelta(minutes=30))
    middle = f.conversation(organization, now=now - timedelta(minutes=10))
    assert services.inbox_assign_backlog(organization=organization) == 1
    assert assignee_of(oldest) == operator.pk
    assert assignee_of(middle) is None and assignee_of(newest) is None
    assert services.inbox_assign_backlog(organization=organization) == 0  # full
    services.conversation_set_status(
        organization=organization, conversation=oldest, status="resolved", actor=operator
    )
    assert services.inbox_assign_backlog(organization=organization) == 1
    assert assignee_of(middle) == operator.pk
    assert assignee_of(newest) is None


def test_manual_assign_reassign_unassign(organization, other_organization):
    alice = f.member(organization)
    bob = f.member(organization)
    stranger = f.member(other_organization)
    conversation = f.conversation(organization)
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=alice, actor=bob
    )
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=alice, actor=bob
    )
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=bob, actor=bob
    )
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=None, actor=bob
    )
    data = [e.data for e in events(organization, "conversation.assigned")]
    assert [d["assignee_id"] for d in data] == [str(alice.pk), str(bob.pk), None]
    assert data[1]["from_assignee_id"] == str(alice.pk)
    kinds = list(
        ConversationActivity.objects.filter(conversation=conversation).values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["assigned", "assigned", "unassigned"]
    with pytest.raises(ValidationFailed):
        services.conversation_assign(
            organization=organization, conversation=conversation, assignee=stranger
        )
    with pytest.raises(NotFound):  # a foreign conversation
        services.conversation_assign(
            organization=other_organization, conversation=conversation, assignee=stranger
        )


# --- reply, notes, hand-over ------------------------------------------------------------------


def test_reply_pauses_agent_answers_and_assigns_replier(organization):
    channel = pf.whatsapp_channel(organization)
    operator = f.member(organization)
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "Hi", connection=channel)
    assert conversation.waiting_since is not None and conversation.agent_active
    message = services.conversation_reply(
        organization=organization, conversation=conversation, user=operator, text="Hello Ana!"
    )
    conversation.refresh_from_db()
    assert (message.sender_kind, message.sender_user_id, message.status) == (
        "operator",
        operator.pk,
        "queued",
    )
    assert message.channel == "whatsapp"
    assert not conversation.agent_active
    assert conversation.waiting_since is None and conversation.first_response_at is not None
    assert conversation.assignee_id == operator.pk
    assert not selectors.conversation_is_unread(conversation=conversation, user=operator)
    assert ConversationActivity.objects.filter(
        conversation=conversation, kind="agent_paused"
    ).exists()


def test_reply_refused_writes_nothing(organization):
    pf.whatsapp_channel(organization)
    operator = f.member(organization)
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "Hi")
    contact_set_consent(
        organization=organization, contact=person, channel="whatsapp", opted_in=False, reason="test"
    )
    with pytest.raises(Unprocessable) as refused:
        services.conversation_reply(
            organization=organization, conversation=conversation, user=operator, text="Hi"
        )
    assert refused.value.code == "opted_out"
    conversation.refresh_from_db()
    assert conversation.agent_active and conversation.assignee_id is None
    assert Message.objects.filter(direction="out").count() == 0


def test_internal_note_is_never_sent(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    before = Event.objects.count()
    note = services.conversation_note_add(
        organization=organization, conversation=conversation, user=operator, text=" Call her back "
    )
    assert note.is_internal_note and note.text == "Call her back" and note.status == ""
    assert Event.objects.count() == before
    with pytest.raises(ValidationFailed):
        services.conversation_note_add(
            organization=organization, conversation=conversation, user=operator, text="  "
        )


def test_take_over_and_hand_back(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    services.conversation_take_over(
        organization=organization, conversation=conversation, user=operator
    )
    conversation.refresh_from_db()
    assert not conversation.agent_active and conversation.assignee_id == operator.pk
    services.conversation_hand_back(
        organization=organization, conversation=conversation, user=operator
    )
    conversation.refresh_from_db()
    assert conversation.agent_active and conversation.assignee_id == operator.pk
    kinds = list(
        ConversationActivity.objects.filter(conversation=conversation).values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["agent_paused", "assigned", "agent_resumed"]


# --- status and snooze ------------------------------------------------------------------------


def test_status_changes_emit_events(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    services.conversation_set_status(
        organization=organization, conversation=conversation, status="pending", actor=operator
    )
    services.conversation_set_status(
        organization=organization, conversation=conversation, status="pending", actor=operator
    )
    services.conversation_set_status(
        organization=organization, conversation=conversation, status="resolved", actor=operator
    )
    conversation.refresh_from_db()
    assert conversation.resolved_at and conversation.waiting_since is None
    changes = [
        (e.data["from_status"], e.data["status"])
        for e in events(organization, "conversation.status_changed")
    ]
    assert changes == [("open", "pending"), ("pending", "resolved")]
    with pytest.raises(ValidationFailed):
        services.conversation_set_status(
            organization=organization, conversation=conversation, status="snoozed"
        )


def test_snooze_and_wake_up(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    now = timezone.now()
    with pytest.raises(ValidationFailed):
        services.conversation_snooze(
            organization=organization, conversation=conversation, until=now - timedelta(minutes=1)
        )
    with pytest.raises(ValidationFailed):
        services.conversation_snooze(
            organization=organization, conversation=conversation, until=now + timedelta(days=91)
        )
    services.conversation_snooze(
        organization=organization,
        conversation=conversation,
        until=now + timedelta(hours=1),
        actor=operator,
    )
    conversation.refresh_from_db()
    assert conversation.status == "snoozed"
    assert services.conversations_wake_snoozed(now=now + timedelta(minutes=59)) == 0
    assert services.conversations_wake_snoozed(now=now + timedelta(hours=1, seconds=1)) == 1
    assert services.conversations_wake_snoozed(now=now + timedelta(hours=2)) == 0
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snoozed_until is None
    last = events(organization, "conversation.status_changed")[-1]
    assert (last.data["from_status"], last.data["status"], last.data["reason"]) == (
        "snoozed",
        "open",
        "snooze ended",
    )


# --- read state -------------------------------------------------------------------------------


def test_read_state_is_per_operator(organization):
    alice = f.member(organization)
    bob = f.member(organization)
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "one")
    assert selectors.conversation_is_unread(conversation=conversation, user=alice)
    services.conversation_mark_read(conversation=conversation, user=alice)
    assert not selectors.conversation_is_unread(conversation=conversation, user=alice)
    assert selectors.conversation_is_unread(conversation=conversation, user=bob)
    f.inbound(organization, person, "two")
    f.inbound(organization, person, "three")
    conversation.refresh_from_db()
    assert selectors.conversation_is_unread(conversation=conversation, user=alice)
    assert selectors.unread_counts(user=alice, conversation_ids=[conversation.pk]) == {
        conversation.pk: 2
    }
    assert selectors.unread_counts(user=bob, conversation_ids=[conversation.pk]) == {
        conversation.pk: 3
    }
    services.conversation_mark_read(conversation=conversation, user=alice)
    services.conversation_mark_unread(conversation=conversation, user=alice)
    assert selectors.conversation_is_unread(conversation=conversation, user=alice)
    services.conversation_mark_read(conversation=conversation, user=alice)
    assert not selectors.conversation_is_unread(conversation=conversation, user=alice)


# --- escalation ---------------------------------------------------------------------------------


def test_escalation_goes_to_an_operator_then_is_idempotent(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    services.conversation_escalate(
        organization=organization,
        conversation=conversation,
        reason="asked for a person",
        source="customer",
        priority="high",
    )
    conversation.refresh_from_db()
    assert not conversation.agent_active and conversation.escalated_at
    assert conversation.assignee_id == operator.pk and conversation.priority == "high"
    services.conversation_escalate(
        organization=organization, conversation=conversation, reason="again"
    )
    [escalated] = events(organization, "conversation.escalated")
    assert escalated.data["escalated_by"] == "customer"
    assert escalated.data["assignee_id"] == str(operator.pk)


def test_escalation_to_supervisor_when_nobody_has_room(organization):
    f.member(organization, available=False)
    moderator = f.member(organization, role="moderator", available=False)
    admin = f.member(organization, role="admin", available=False)
    conversation = f.conversation(organization)
    services.conversation_escalate(
        organization=organization, conversation=conversation, reason="legal question"
    )
    assert assignee_of(conversation) == moderator.pk
    InboxSettings.objects.filter(organization=organization).update(escalate_to="admins")
    other = f.conversation(organization)
    services.conversation_escalate(
        organization=organization, conversation=other, reason="legal question"
    )
    assert assignee_of(other) == admin.pk


def test_resolved_conversation_reopens_when_escalated(organization):
    conversation = f.conversation(organization)
    services.conversation_set_status(
        organization=organization, conversation=conversation, status="resolved"
    )
    services.conversation_escalate(organization=organization, conversation=conversation, reason="x")
    conversation.refresh_from_db()
    assert conversation.status == "open"


# --- SLA ----------------------------------------------------------------------------------------


def _breach_all(now):
    handled = []
    for breach in services.sla_due_breaches(now=now):
        from apps.tenancy.models import Organization

        org = Organization.objects.get(pk=breach.organization_id)
        handled.append(services.conversation_sla_breach(organization=org, breach=breach, now=now))
    return handled


def test_first_response_breach_reassigns_once(organization):
    slow = f.member(organization, email="slow@example.com")
    fast = f.member(organization, email="fast@example.com")
    now = timezone.now()
    conversation = f.conversation(organization, now=now - timedelta(minutes=20))
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=slow
    )
    assert _breach_all(now - timedelta(minutes=10)) == []  # 10 minutes: within the default 15
    [breach] = _breach_all(now)
    assert (breach.kind, breach.action, breach.assignee_id) == (
        "first_response",
        "reassigned",
        fast.pk,
    )
    assert _breach_all(now + timedelta(minutes=5)) == []  # handled once
    assert SlaBreach.objects.count() == 1
    [escalated] = events(organization, "conversation.escalated")
    assert escalated.data["escalated_by"] == "sla" and escalated.data["sla"] == "first_response"
    assert escalated.data["action"] == "reassigned"
    conversation.refresh_from_db()
    assert conversation.priority == "high" and conversation.escalated_at
    assert conversation.agent_active  # the agent may still answer


def test_breach_escalates_to_moderator_when_nobody_is_available(organization):
    operator = f.member(organization)
    moderator = f.member(organization, role="moderator", available=False)
    now = timezone.now()
    conversation = f.conversation(organization, now=now - timedelta(minutes=20))
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=operator
    )
    [breach] = _breach_all(now)
    assert (breach.action, breach.assignee_id) == ("escalated", moderator.pk)
    assert assignee_of(conversation) == moderator.pk


def test_next_response_breach_after_an_answer_and_limits_from_settings(organization):
    pf.whatsapp_channel(organization)
    InboxSettings.objects.create(
        organization=organization, first_response_minutes=None, next_response_minutes=5
    )
    operator = f.member(organization)
    now = timezone.now()
    person = f.contact(organization)
    conversation = f.inbound(organization, person, "hi", now=now - timedelta(hours=2))
    assert _breach_all(now) == []  # no first-response limit
    services.conversation_reply(
        organization=organization,
        conversation=conversation,
        user=operator,
        text="hello",
        now=now - timedelta(minutes=90),
    )
    f.inbound(organization, person, "and?", now=now - timedelta(minutes=6))
    [breach] = _breach_all(now)
    assert breach.kind == "next_response" and breach.limit_minutes == 5
    assert breach.action == "flagged"  # the only member is the assignee; no supervisor


def test_breach_not_applied_to_answered_or_snoozed(organization):
    now = timezone.now()
    snoozed = f.conversation(organization, now=now - timedelta(minutes=30))
    services.conversation_snooze(
        organization=organization,
        conversation=snoozed,
        until=now + timedelta(hours=1),
        now=now - timedelta(minutes=1),
    )
    resolved = f.conversation(organization, now=now - timedelta(minutes=30))
    services.conversation_set_status(
        organization=organization, conversation=resolved, status="resolved"
    )
    assert _breach_all(now) == []


def test_customer_asking_for_a_human_escalates_after_commit(
    organization, django_capture_on_commit_callbacks
):
    operator = f.member(organization)
    person = f.contact(organization)
    with django_capture_on_commit_callbacks() as callbacks:
        conversation = f.inbound(organization, person, "Can I talk to a human please?")
    from apps.conversations import tasks

    assert len(callbacks) >= 1  # the escalation task is published after commit
    message = Message.objects.get(conversation=conversation)
    assert tasks.conversation_customer_escalate(str(conversation.pk), str(message.pk)) is True
    conversation.refresh_from_db()
    assert not conversation.agent_active and conversation.assignee_id == operator.pk
    [escalated] = events(organization, "conversation.escalated")
    assert escalated.data["escalated_by"] == "customer"
    assert "talk to a human" in escalated.data["reason"]


def test_activities_are_recorded_for_the_audit_trail(organization):
    operator = f.member(organization)
    conversation = f.conversation(organization)
    services.conversation_assign(
        organization=organization, conversation=conversation, assignee=operator, actor=operator
    )
    services.conversation_set_status(
        organization=organization, conversation=conversation, status="resolved", actor=operator
    )
    rows = list(
        ConversationActivity.objects.filter(conversation=conversation).order_by("created_at")
    )
    assert [(r.kind, r.actor_id) for r in rows] == [
        (ActivityKind.ASSIGNED, operator.pk),
        (ActivityKind.STATUS_CHANGED, operator.pk),
    ]


def test_customer_escalation_ignores_a_message_of_another_conversation_or_organization(
    organization, other_organization
):
    """The escalation task takes ids: a message id that is not an inbound message of that
    conversation escalates nothing, and its text never lands in this organization."""
    from apps.conversations import tasks

    f.member(organization)
    conversation = f.conversation(organization, "Hello there")
    neighbour = f.conversation(organization, "Can I talk to a human please? (neighbour)")
    foreign = f.conversation(other_organization, "Can I talk to a human please? secret-b")
    for stranger in (neighbour, foreign):
        message = Message.objects.get(conversation=stranger)
        assert tasks.conversation_customer_escalate(str(conversation.pk), str(message.pk)) is False
    conversation.refresh_from_db()
    assert conversation.escalated_at is None and conversation.agent_active
    assert events(organization, "conversation.escalated") == []
    own = Message.objects.get(conversation=conversation)
    assert tasks.conversation_customer_escalate(str(conversation.pk), str(own.pk)) is True
