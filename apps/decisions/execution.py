"""`execute: true`: the Core App carries a decision's actions out itself (for organizations
without n8n), through the same services the Core API uses.

Each action runs in its own savepoint: one that fails (a slot taken meanwhile, an opted-out
channel) is reported and rolled back without undoing the others. Results, one per action:
`{index, type, status, detail, ...ids}` with status `done`, `scheduled` (it takes effect
later: a send held by quiet hours, a follow-up), `skipped` (nothing to do: `no_action`,
`offer_slots`, which is carried by the message) or `failed` (with `error: {code, message}`).
They are stored on the decision (`execution`), so a replayed decision reports them again
instead of executing twice.

Carried out by: `send_message` → `send_message_via_send_service` (the adapter to the send
service, `apps.conversations.services.message_send`; a future `send_at` becomes a
`ScheduledAction` a beat job runs); `book_appointment` → `booking_create` / `booking_reschedule`;
`update_contact` → `contact_update` (fields, consent); `update_lead` → `lead_update`,
`lead_qualify`, `lead_disqualify`; `move_deal` → `deal_move_stage`; `create_task` →
`task_create`; `escalate_to_human` → `apps.conversations.services.conversation_escalate` (no conversation yet:
an urgent task); `schedule_follow_up` → a `ScheduledAction` that makes and executes a
`follow_up_due` decision at `at`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.errors import DomainError
from apps.decisions import actions as A
from apps.decisions.engines.base import parse_iso
from apps.decisions.models import (
    Decision,
    ScheduledAction,
    ScheduledKind,
    ScheduledStatus,
)

logger = logging.getLogger(__name__)

ACTOR = "agent"
SCHEDULE_BATCH = 100
# A send held past its time by this much is dropped (its moment has passed).
STALE_SEND = timedelta(hours=12)
# A claimed follow-up whose worker died is retried after this long.
LEASE = timedelta(minutes=10)


class _Skip(Exception):
    """The action needs nothing done (reported as `skipped`)."""


def send_message_via_send_service(*, organization, contact, action: dict) -> dict:
    """THE adapter between a `send_message` action and the send service
    (`apps.conversations.services.message_send`: channel connection, address, consent, the
    WhatsApp window and templates, queueing to the provider on the `sends` queue).

    The guard already chose the channel and, outside the WhatsApp window, the template; the
    send service checks again (the state may have changed since). Raises the send service's
    refusals (`Unprocessable`: `opted_out`, `no_channel`, `no_address`,
    `whatsapp_window_closed`, `unknown_template`), which the caller reports as `failed`.
    """
    from apps.conversations.services import message_send

    template = action.get("template") or {}
    message = message_send(
        organization=organization,
        contact=contact,
        text=action["body"],
        channel=action["channel"],
        purpose=action["purpose"],
        template=template.get("name"),
        template_variables=template.get("variables"),
    )
    return {"status": "done", "detail": "Queued for sending.", "message_id": str(message.pk)}


def _send(decision: Decision, action: dict, now: datetime) -> dict:
    send_at = parse_iso(action["send_at"])
    if send_at is not None and send_at > now:
        scheduled = ScheduledAction.objects.create(
            organization_id=decision.organization_id,
            contact_id=decision.contact_id,
            decision=decision,
            kind=ScheduledKind.SEND_MESSAGE,
            due_at=send_at,
            payload=action,
        )
        return {
            "status": "scheduled",
            "detail": f"Held until {action['send_at']}.",
            "scheduled_action_id": str(scheduled.pk),
        }
    return send_message_via_send_service(
        organization=decision.organization, contact=decision.contact, action=action
    )


def _book(decision: Decision, action: dict, now: datetime) -> dict:
    from apps.bookings import selectors as bookings
    from apps.bookings.services import booking_create, booking_reschedule

    organization = decision.organization
    kind = bookings.appointment_type_get(
        organization=organization, ref=action["appointment_type_id"]
    )
    resource = (
        bookings.resource_get(organization=organization, pk=action["resource_id"])
        if action["resource_id"]
        else None
    )
    start = parse_iso(action["start"])
    if action["booking_id"]:
        booking = bookings.booking_get(organization=organization, pk=action["booking_id"])
        booking = booking_reschedule(booking=booking, start=start, resource=resource, now=now)
        return {"status": "done", "detail": "Rescheduled.", "booking_id": str(booking.pk)}
    try:
        booking = booking_create(
            organization=organization,
            contact=decision.contact,
            appointment_type=kind,
            start=start,
            resource=resource,
            source=ACTOR,
            now=now,
        )
    except DomainError as exc:
        if exc.code != "slot_taken" or resource is None:
            raise
        booking = booking_create(  # the suggested resource was taken: any free one will do
            organization=organization,
            contact=decision.contact,
            appointment_type=kind,
            start=start,
            source=ACTOR,
            now=now,
        )
    return {"status": "done", "detail": "Booked.", "booking_id": str(booking.pk)}


def _update_contact(decision: Decision, action: dict, now: datetime) -> dict:
    from apps.crm.services import contact_update

    contact_update(
        organization=decision.organization,
        contact=decision.contact,
        data=action["fields"],
        consent=action["consent"],
        consent_source=ACTOR,
    )
    return {"status": "done", "detail": "Contact updated.", "contact_id": str(decision.contact_id)}


def _update_lead(decision: Decision, action: dict, now: datetime) -> dict:
    from apps.crm import selectors as crm
    from apps.crm.services import lead_disqualify, lead_qualify, lead_update

    organization = decision.organization
    lead = crm.lead_get(organization=organization, lead_id=action["lead_id"])
    if action["answers"]:
        lead = lead_update(
            organization=organization, lead=lead, data={"answers": action["answers"]}
        )
    if action["status"] == "qualified" and lead.status != "qualified":
        lead = lead_qualify(organization=organization, lead=lead, actor=ACTOR, reason="agent")
    elif action["status"] == "disqualified":
        lead = lead_disqualify(
            organization=organization,
            lead=lead,
            reason=(action["reason"] or "Disqualified by the agent.")[:200],
            actor=ACTOR,
        )
    return {
        "status": "done",
        "detail": f"Lead {lead.status}, score {lead.score}.",
        "lead_id": str(lead.pk),
    }


def _move_deal(decision: Decision, action: dict, now: datetime) -> dict:
    from apps.crm import selectors as crm
    from apps.crm.services import deal_move_stage

    organization = decision.organization
    deal = crm.deal_get(organization=organization, deal_id=action["deal_id"])
    stage = crm.stage_resolve(pipeline=deal.pipeline, stage_id=action["stage_id"])
    deal = deal_move_stage(organization=organization, deal=deal, stage=stage, actor=ACTOR)
    return {"status": "done", "detail": f"Deal in {deal.stage.name}.", "deal_id": str(deal.pk)}


def _create_task(decision: Decision, action: dict, now: datetime) -> dict:
    from apps.crm import selectors as crm
    from apps.crm.services import task_create

    organization = decision.organization
    deal = (
        crm.deal_get(organization=organization, deal_id=action["deal_id"])
        if action["deal_id"]
        else None
    )
    task = task_create(
        organization=organization,
        title=action["title"],
        description=action["description"],
        due_at=parse_iso(action["due_at"]),
        contact=decision.contact,
        deal=deal,
        source=ACTOR,
    )
    return {"status": "done", "detail": "Task created.", "task_id": str(task.pk)}


def _escalate(decision: Decision, action: dict, now: datetime) -> dict:
    from apps.conversations.models import Conversation
    from apps.conversations.services import conversation_escalate
    from apps.crm.services import task_create

    organization = decision.organization
    conversation = Conversation.objects.filter(
        organization=organization, contact_id=decision.contact_id
    ).first()
    if conversation is None:
        task = task_create(
            organization=organization,
            title=f"Take over {decision.contact}: {action['reason']}"[:200],
            due_at=now,
            contact=decision.contact,
            source=ACTOR,
        )
        return {
            "status": "done",
            "detail": "No conversation yet: a task was created for the team.",
            "task_id": str(task.pk),
        }
    conversation_escalate(
        organization=organization,
        conversation=conversation,
        reason=action["reason"],
        priority=action["priority"],
        source="agent",
    )
    return {
        "status": "done",
        "detail": "The agent stopped; a person takes over.",
        "conversation_id": str(conversation.pk),
    }


def _follow_up(decision: Decision, action: dict, now: datetime) -> dict:
    scheduled = ScheduledAction.objects.create(
        organization_id=decision.organization_id,
        contact_id=decision.contact_id,
        decision=decision,
        kind=ScheduledKind.FOLLOW_UP,
        due_at=parse_iso(action["at"]),
        payload=action,
    )
    return {
        "status": "scheduled",
        "detail": f"A follow-up decision runs at {action['at']}.",
        "scheduled_action_id": str(scheduled.pk),
    }


def _skip(decision: Decision, action: dict, now: datetime) -> dict:
    if action["type"] == A.OFFER_SLOTS:
        raise _Skip("Offered in the message; nothing to execute.")
    raise _Skip(action.get("reason") or "Nothing to do.")


EXECUTORS = {
    A.SEND_MESSAGE: _send,
    A.OFFER_SLOTS: _skip,
    A.BOOK_APPOINTMENT: _book,
    A.UPDATE_CONTACT: _update_contact,
    A.UPDATE_LEAD: _update_lead,
    A.MOVE_DEAL: _move_deal,
    A.CREATE_TASK: _create_task,
    A.ESCALATE_TO_HUMAN: _escalate,
    A.SCHEDULE_FOLLOW_UP: _follow_up,
    A.NO_ACTION: _skip,
}


def action_execute(decision: Decision, action: dict, now: datetime) -> dict:
    """Carry one action out in its own savepoint; never raises for a refused action."""
    try:
        with transaction.atomic():
            return EXECUTORS[action["type"]](decision, action, now)
    except _Skip as skip:
        return {"status": "skipped", "detail": str(skip)}
    except DomainError as exc:
        return {
            "status": "failed",
            "detail": exc.message,
            "error": {"code": exc.code, "message": exc.message},
        }
    except Exception:  # a bug elsewhere must not lose the other actions' results
        logger.exception("executing %s of decision %s failed", action["type"], decision.pk)
        return {
            "status": "failed",
            "detail": "Internal error; it has been logged.",
            "error": {"code": "internal_error", "message": "Internal error."},
        }


def decision_execute(*, decision: Decision, now: datetime | None = None) -> list[dict]:
    """Execute every action of `decision` once and store the results on it.

    Idempotent: a decision already executed returns its stored results. Each action writes
    through its service (with that service's events).
    """
    if decision.execution is not None:
        return decision.execution
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Decision.objects.select_for_update(no_key=True)
            .select_related("organization", "contact")
            .get(pk=decision.pk)
        )
        if locked.execution is not None:
            decision.execution = locked.execution
            return locked.execution
        results = []
        for index, action in enumerate(locked.actions):
            outcome = action_execute(locked, action, now)
            results.append({"index": index, "type": action["type"], **outcome})
        locked.execution = results
        locked.executed_at = now
        locked.save(update_fields=["execution", "executed_at", "updated_at"])
    decision.execution, decision.executed_at = results, now
    return results


# --- the scheduled part of `execute: true` ---------------------------------------------------


def _run_scheduled(item: ScheduledAction, now: datetime) -> dict:
    from apps.decisions.selectors import decision_subject_get
    from apps.decisions.services import decision_make

    if item.kind == ScheduledKind.SEND_MESSAGE:
        if now - item.due_at > STALE_SEND:
            return {"status": "skipped", "detail": "Too late: the moment for this message passed."}
        decision = item.decision
        if decision is None:
            return {"status": "skipped", "detail": "Its decision was deleted."}
        return action_execute(decision, {**item.payload, "send_at": None}, now)
    contact, conversation = decision_subject_get(
        organization=item.organization, contact_id=item.contact_id
    )
    decision, _ = decision_make(
        organization=item.organization,
        contact=contact,
        conversation=conversation,
        trigger="follow_up_due",
        purpose=item.payload.get("purpose"),
        event_id=f"scheduled:{item.pk}",
        execute=True,
        now=now,
    )
    return {"status": "done", "detail": "Follow-up decided.", "decision_id": str(decision.pk)}


def scheduled_actions_run_due(*, now: datetime | None = None, limit: int = SCHEDULE_BATCH) -> int:
    """Beat job: run the due scheduled actions (held sends, follow-up decisions).

    Items are claimed with `FOR UPDATE SKIP LOCKED`. A held send is executed in the claiming
    transaction. A follow-up's claim only leases the row (`due_at` moves `LEASE` ahead) and
    commits; the decision then runs outside any transaction (it may ask the LLM), and the row
    is marked done. The decision is idempotent through its event id, so a crash in between
    decides once when the lease expires. Returns how many items were run.
    """
    now = now or timezone.now()
    done = 0
    for _ in range(limit):
        with transaction.atomic():
            item = (
                ScheduledAction.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("organization", "decision")
                .filter(status=ScheduledStatus.PENDING, due_at__lte=now)
                .order_by("due_at")
                .first()
            )
            if item is None:
                break
            if item.kind == ScheduledKind.SEND_MESSAGE:
                result = _run_scheduled(item, now)
                failed = result["status"] == "failed"
                item.status = ScheduledStatus.FAILED if failed else ScheduledStatus.DONE
                item.result, item.completed_at = result, now
                item.save(update_fields=["status", "result", "completed_at", "updated_at"])
                done += 1
                continue
            item.due_at = now + LEASE
            item.save(update_fields=["due_at", "updated_at"])
        try:
            result = _run_scheduled(item, now)
            status = ScheduledStatus.DONE
        except DomainError as exc:  # e.g. credits exhausted: visible on the row
            result = {"status": "failed", "detail": exc.message, "error": {"code": exc.code}}
            status = ScheduledStatus.FAILED
        ScheduledAction.objects.filter(pk=item.pk).update(
            status=status, result=result, completed_at=timezone.now()
        )
        done += 1
    return done
