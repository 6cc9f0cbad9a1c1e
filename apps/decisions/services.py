"""Decision write actions.

A decision has two phases, so that no network I/O ever happens inside a transaction:

1. `decision_prepare` (no transaction, reads only): a stored decision for the same
   `event_id` short-cuts everything; otherwise the credit check, the context
   (`context.decision_context_load`), the engine (`engines.engine_run`: the LLM call happens
   here), the compliance guard and the next memory state.
2. `decision_record` (one transaction): the `Decision` row, the credits it costs (the
   ledger entry), the contact's conversation memory and the `decision.made` event, all or
   nothing. A concurrent duplicate of the same `event_id` loses the insert race and
   returns the winner's decision without charging or emitting anything.

`decision_execute` then carries the actions out (`execute: true`), `decision_make` chains
all three (tasks use it), and `decision_simulate` runs phase 1 only (the admin simulator:
no row, no event, no credits, no memory).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import CharField, Exists, OuterRef, Subquery
from django.db.models.functions import Cast
from django.utils import timezone

from apps.core import tracing
from apps.decisions import selectors
from apps.decisions.context import DecisionContext, decision_context_load, inputs_digest
from apps.decisions.credits import credits_consume, credits_require, decision_cost
from apps.decisions.engines import EngineResult, engine_requested, engine_run
from apps.decisions.guard import compliance_guard
from apps.decisions.memory import memory_next, memory_save
from apps.decisions.models import Decision, DecisionOutcome, OutcomeKind
from apps.events.services import emit
from apps.revenue.limits import limit_check

logger = logging.getLogger(__name__)

OUTCOME_LOOKBACK = {
    OutcomeKind.REPLY_RECEIVED: timedelta(days=7),
    OutcomeKind.BOOKING_MADE: timedelta(days=7),
    OutcomeKind.DEAL_WON: timedelta(days=30),
}


@dataclass
class DecisionPlan:
    """Phase 1's result: what will be recorded (or the decision already recorded)."""

    organization: object
    contact: object
    conversation: object | None
    trigger: str
    event_id: str | None
    started: float
    existing: Decision | None = None
    ctx: DecisionContext | None = None
    result: EngineResult | None = None
    requested: str = "rules"
    actions: list[dict] = field(default_factory=list)
    compliance: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    balance: int | None = None  # credits left after recording

    @property
    def cost(self) -> int:
        return decision_cost(self.result.engine) if self.result else 0

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def decision_prepare(
    *,
    organization,
    contact,
    conversation=None,
    trigger: str,
    message: str = "",
    event_id: str | None = None,
    purpose: str | None = None,
    engine: str | None = None,
    simulate: bool = False,
    now: datetime | None = None,
) -> DecisionPlan:
    """Phase 1 (see the module docstring). Reads only; must run outside a transaction when
    the LLM engine may be used. Raises `PaymentRequired` (`credits_exhausted`) unless
    simulating. `contact` should come from `selectors.decision_subject_get`."""
    started = time.monotonic()
    plan = DecisionPlan(
        organization=organization,
        contact=contact,
        conversation=conversation,
        trigger=trigger,
        event_id=event_id or None,
        started=started,
    )
    if plan.event_id and not simulate:
        plan.existing = selectors.decision_for_event(
            organization=organization, contact=contact, event_id=plan.event_id
        )
        if plan.existing is not None:
            return plan
    now = now or timezone.now()
    plan.requested = engine_requested(engine)
    engine_used = plan.requested
    downgrade = ""
    if not simulate:
        account = credits_require(organization=organization, amount=decision_cost("rules"), now=now)
        if engine_used == "llm" and account.balance < decision_cost("llm"):
            engine_used = "rules"
            downgrade = (
                f"{account.balance} credit(s) left, fewer than an LLM decision costs "
                f"({decision_cost('llm')}): the rules engine answered"
            )
    ctx = decision_context_load(
        organization=organization,
        contact=contact,
        conversation=conversation,
        trigger=trigger,
        message=message,
        purpose=purpose,
        now=now,
        simulate=simulate,
    )
    plan.ctx = ctx
    plan.conversation = ctx.conversation
    plan.result = engine_run(ctx, requested=engine_used)
    if downgrade:
        plan.result.fallback_reason = downgrade
    plan.actions, plan.compliance = compliance_guard(ctx, plan.result.actions)
    plan.memory = memory_next(ctx, plan.result, plan.actions)
    return plan


@transaction.atomic
def decision_record(*, plan: DecisionPlan) -> tuple[Decision, bool]:
    """Phase 2: store the decision, charge its credits, save the memory, emit
    `decision.made`. Returns (decision, created); created is False when the event_id had
    already been decided (nothing is charged or emitted then). Raises `PaymentRequired`
    when the credits ran out meanwhile (nothing is written)."""
    if plan.existing is not None:
        return plan.existing, False
    limit_check(organization=plan.organization, limit="decisions_per_month")
    ctx, result = plan.ctx, plan.result
    organization = plan.organization
    summary = ctx.summary()
    decision = Decision(
        organization=organization,
        contact=plan.contact,
        conversation=ctx.conversation,
        trigger=plan.trigger,
        event_id=plan.event_id,
        message=ctx.message,
        intent=result.intent[:32],
        inputs_digest=inputs_digest(summary),
        context_summary=summary,
        engine_requested=plan.requested,
        engine=result.engine,
        fallback_reason=result.fallback_reason[:300],
        actions=plan.actions,
        action_types=[a["type"] for a in plan.actions],
        rationale=result.rationale,
        compliance=plan.compliance,
        intervention_count=len(plan.compliance["interventions"]),
        latency_ms=plan.elapsed_ms,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        credits_used=plan.cost,
        trace_id=tracing.current_trace_id(),
    )
    if plan.event_id:
        try:
            with transaction.atomic():
                decision.save(force_insert=True)
        except IntegrityError:
            existing = selectors.decision_for_event(
                organization=organization, contact=plan.contact, event_id=plan.event_id
            )
            if existing is None:
                raise
            return existing, False
    else:
        decision.save(force_insert=True)
    account = credits_consume(
        organization=organization, amount=plan.cost, decision=decision, now=ctx.now
    )
    plan.balance = account.balance
    memory_save(organization=organization, contact=plan.contact, memory=plan.memory, now=ctx.now)
    emit(
        organization=organization,
        type="decision.made",
        subject_type="decision",
        subject_id=decision.id,
        data=decision_event_data(decision, niche=ctx.niche.niche.slug),
    )
    return decision, True


def decision_event_data(decision: Decision, **extra) -> dict:
    return {
        "decision_id": str(decision.id),
        "contact_id": str(decision.contact_id),
        "conversation_id": str(decision.conversation_id) if decision.conversation_id else None,
        "trigger": decision.trigger,
        "event_id": decision.event_id,
        "engine": decision.engine,
        "engine_requested": decision.engine_requested,
        "fallback_reason": decision.fallback_reason or None,
        "intent": decision.intent,
        "actions": decision.actions,
        "action_types": decision.action_types,
        "rationale": decision.rationale,
        "interventions": decision.intervention_count,
        "credits_used": decision.credits_used,
        **extra,
    }


def decision_make(
    *,
    organization,
    contact,
    conversation=None,
    trigger: str,
    message: str = "",
    event_id: str | None = None,
    purpose: str | None = None,
    execute: bool = False,
    now: datetime | None = None,
) -> tuple[Decision, bool]:
    """Prepare, record and (with `execute`) carry out a decision; for tasks and scripts.
    Must be called outside a transaction (the LLM may be asked). Idempotent per event_id."""
    plan = decision_prepare(
        organization=organization,
        contact=contact,
        conversation=conversation,
        trigger=trigger,
        message=message,
        event_id=event_id,
        purpose=purpose,
        now=now,
    )
    decision, created = decision_record(plan=plan)
    if execute and decision.execution is None:
        from apps.decisions.execution import decision_execute

        decision_execute(decision=decision)
    return decision, created


def decision_simulate(
    *, organization, contact, trigger: str, message: str = "", engine: str | None = None
) -> DecisionPlan:
    """What the agent would do, with no side effect at all (no Decision row, no event, no
    credits, no memory update). Reads only."""
    return decision_prepare(
        organization=organization,
        contact=contact,
        trigger=trigger,
        message=message,
        engine=engine,
        simulate=True,
    )


# --- outcomes ---------------------------------------------------------------------------------


def decision_outcome_record(
    *,
    decision: Decision,
    kind: str,
    subject_type: str,
    subject_id,
    occurred_at: datetime,
    data: dict | None = None,
) -> DecisionOutcome | None:
    """Link something that happened after `decision` (a reply, a booking, a won deal) to it.

    Idempotent: a subject is linked once per kind (a repeat returns None and writes nothing).
    """
    if kind not in OutcomeKind.values:
        raise ValueError(f"unknown outcome kind {kind!r}")
    with transaction.atomic():
        outcome, created = DecisionOutcome.objects.get_or_create(
            organization_id=decision.organization_id,
            kind=kind,
            subject_id=str(subject_id),
            defaults={
                "decision": decision,
                "contact_id": decision.contact_id,
                "subject_type": subject_type,
                "occurred_at": occurred_at,
                "data": data or {},
            },
        )
    return outcome if created else None


def _last_decision(at_field: str, lookback: timedelta, contact_field: str = "contact_id"):
    return Subquery(
        Decision.objects.filter(
            organization_id=OuterRef("organization_id"),
            contact_id=OuterRef(contact_field),
            created_at__lt=OuterRef(at_field),
            created_at__gte=OuterRef(at_field) - lookback,
        )
        .order_by("-created_at")
        .values("pk")[:1]
    )


def decision_outcomes_link(*, since: datetime | None = None, now: datetime | None = None) -> int:
    """Beat job: link recent replies, bookings and won deals to the last decision made for
    their contact before them (within 7 days; deals 30). Reads three tables, writes only
    `DecisionOutcome` rows; idempotent (overlapping windows link nothing twice). Returns
    how many outcomes were recorded."""
    from apps.bookings.models import Booking
    from apps.conversations.models import Direction, Message
    from apps.crm.models import Deal, DealStatus

    now = now or timezone.now()
    since = since or now - timedelta(hours=2)
    sources = [
        (
            OutcomeKind.REPLY_RECEIVED,
            "message",
            Message.objects.filter(
                direction=Direction.INBOUND, created_at__gte=since, created_at__lt=now
            ),
            "created_at",
            "contact_id",
        ),
        (
            OutcomeKind.BOOKING_MADE,
            "booking",
            Booking.objects.filter(created_at__gte=since, created_at__lt=now),
            "created_at",
            "contact_id",
        ),
        (
            OutcomeKind.DEAL_WON,
            "deal",
            Deal.objects.filter(
                status=DealStatus.WON,
                contact__isnull=False,
                closed_at__gte=since,
                closed_at__lt=now,
            ),
            "closed_at",
            "contact_id",
        ),
    ]
    recorded = 0
    for kind, subject_type, queryset, at_field, contact_field in sources:
        rows = (
            queryset.annotate(
                decision_id=_last_decision(at_field, OUTCOME_LOOKBACK[kind], contact_field)
            )
            .filter(decision_id__isnull=False)
            .exclude(
                Exists(
                    DecisionOutcome.objects.filter(
                        organization_id=OuterRef("organization_id"),
                        kind=kind,
                        subject_id=Cast(OuterRef("pk"), CharField()),
                    )
                )
            )
            .values_list("pk", "organization_id", contact_field, at_field, "decision_id")
        )
        outcomes = [
            DecisionOutcome(
                organization_id=org_id,
                decision_id=decision_id,
                contact_id=contact_id,
                kind=kind,
                subject_type=subject_type,
                subject_id=str(pk),
                occurred_at=at,
            )
            for pk, org_id, contact_id, at, decision_id in rows.iterator(chunk_size=500)
        ]
        DecisionOutcome.objects.bulk_create(outcomes, ignore_conflicts=True)
        recorded += len(outcomes)
    return recorded
