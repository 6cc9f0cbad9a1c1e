"""The decision context: everything an engine may look at, loaded with a bounded number of
queries (see `decision_context_load`).

- organization and niche (agent pack, prompts with overrides, qualification and compliance
  rules, objections, workflows): `apps.niches.selectors.niche_context`, cached per
  organization (0 queries on a hit);
- contact, its conversation and the agent's memory: the caller's
  (`selectors.decision_subject_get`, one query);
- consent per channel, the open lead (answers, score), open deals with their pipeline's
  stages, bookings from 30 days ago on, the last messages: ONE query (`_CONTEXT_SQL`, JSON
  sub-selects), read into the immutable views below (`LeadView`, `DealView`, ...);
- appointment types and free slots: only when an engine offers or books a slot (1 + 4).

The context is plain data for the engines; it never writes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from apps.bookings.models import LIVE_STATUSES, AppointmentType, Booking, BookingStatus
from apps.bookings.slots import Slot, slots_compute
from apps.conversations.models import Message
from apps.core.choices import Channel
from apps.core.errors import DomainError
from apps.crm.models import ConsentStatus, ContactConsent, Deal, Lead, LeadStatus, Stage
from apps.niches.selectors import NicheContext, niche_context

RECENT_MESSAGES = 10
BOOKINGS_LOOKBACK = timedelta(days=30)
SLOT_WINDOWS = (timedelta(days=7), timedelta(days=30))
SLOTS_OFFERED = 3
OPEN_LEAD_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED)
# Channels a business may start a conversation on, in order of preference.
_ADDRESSABLE = {
    Channel.SMS: "phone",
    Channel.WHATSAPP: "phone",
    Channel.EMAIL: "email",
}


@dataclass(frozen=True)
class LeadView:
    pk: uuid.UUID
    status: str
    score: int
    score_reasons: list
    answers: dict
    source: str


@dataclass(frozen=True)
class StageView:
    pk: uuid.UUID
    name: str
    order: int
    is_won: bool
    is_lost: bool


@dataclass(frozen=True)
class DealView:
    pk: uuid.UUID
    title: str
    stage: StageView
    stages: tuple[StageView, ...]  # the pipeline's, in order


@dataclass(frozen=True)
class TypeView:
    pk: uuid.UUID
    slug: str
    name: str
    is_active: bool


@dataclass(frozen=True)
class BookingView:
    pk: uuid.UUID
    start: datetime
    end: datetime
    status: str
    appointment_type: TypeView


@dataclass(frozen=True)
class MessageView:
    direction: str
    channel: str
    text: str
    created_at: datetime


_CONTEXT_SQL = f"""
SELECT
  (SELECT coalesce(json_object_agg(cc.channel, cc.status), '{{}}'::json)
     FROM {ContactConsent._meta.db_table} cc WHERE cc.contact_id = %(contact)s) AS consents,
  (SELECT row_to_json(l) FROM (
     SELECT id, status, score, score_reasons, answers, source FROM {Lead._meta.db_table}
     WHERE organization_id = %(org)s AND contact_id = %(contact)s AND status = ANY(%(open)s)
     ORDER BY created_at DESC LIMIT 1) l) AS lead,
  (SELECT coalesce(json_agg(d ORDER BY d.created_at DESC), '[]'::json) FROM (
     SELECT dl.id, dl.title, dl.created_at, dl.stage_id,
       (SELECT json_agg(json_build_object('id', s.id, 'name', s.name, 'order', s."order",
                                          'is_won', s.is_won, 'is_lost', s.is_lost)
                        ORDER BY s."order")
          FROM {Stage._meta.db_table} s WHERE s.pipeline_id = dl.pipeline_id) AS stages
     FROM {Deal._meta.db_table} dl
     WHERE dl.organization_id = %(org)s AND dl.contact_id = %(contact)s AND dl.status = 'open'
     ORDER BY dl.created_at DESC LIMIT 5) d) AS deals,
  (SELECT coalesce(json_agg(b ORDER BY b.start), '[]'::json) FROM (
     SELECT bk.id, bk.start, bk."end", bk.status, t.id AS type_id, t.slug, t.name, t.is_active
     FROM {Booking._meta.db_table} bk
     JOIN {AppointmentType._meta.db_table} t ON t.id = bk.appointment_type_id
     WHERE bk.organization_id = %(org)s AND bk.contact_id = %(contact)s
       AND bk.start >= %(since)s
     ORDER BY bk.start LIMIT 20) b) AS bookings,
  (SELECT coalesce(json_agg(m ORDER BY m.created_at), '[]'::json) FROM (
     SELECT direction, channel, text, created_at FROM {Message._meta.db_table}
     WHERE conversation_id = %(conversation)s AND NOT is_internal_note
     ORDER BY created_at DESC LIMIT {RECENT_MESSAGES}) m) AS messages
"""  # noqa: S608 - table names are our models'


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _stage(row: dict) -> StageView:
    return StageView(
        pk=uuid.UUID(row["id"]),
        name=row["name"],
        order=row["order"],
        is_won=row["is_won"],
        is_lost=row["is_lost"],
    )


def _deal(row: dict) -> DealView | None:
    stages = tuple(_stage(s) for s in row["stages"] or ())
    stage = next((s for s in stages if str(s.pk) == row["stage_id"]), None)
    if stage is None:
        return None
    return DealView(pk=uuid.UUID(row["id"]), title=row["title"], stage=stage, stages=stages)


def _booking(row: dict) -> BookingView:
    return BookingView(
        pk=uuid.UUID(row["id"]),
        start=_time(row["start"]),
        end=_time(row["end"]),
        status=row["status"],
        appointment_type=TypeView(
            pk=uuid.UUID(row["type_id"]),
            slug=row["slug"],
            name=row["name"],
            is_active=row["is_active"],
        ),
    )


def related_or_none(obj, name: str):
    """A reverse one-to-one that may be missing (`contact.conversation`), as None."""
    try:
        return getattr(obj, name)
    except obj.__class__._meta.get_field(name).related_model.DoesNotExist:
        return None


@dataclass
class DecisionContext:
    organization: object
    niche: NicheContext
    trigger: str
    message: str
    message_given: bool
    purpose: str | None
    now: datetime
    contact: object
    conversation: object | None
    memory: object | None
    consents: dict[str, str]
    lead: object | None
    deals: list
    bookings: list
    recent_messages: list
    simulate: bool = False
    _slots: dict = field(default_factory=dict, repr=False)
    _types: list | None = field(default=None, repr=False)

    # --- who and when ---------------------------------------------------------------------
    @cached_property
    def tz(self) -> ZoneInfo:
        name = self.contact.timezone or self.organization.timezone
        try:
            return ZoneInfo(name)
        except (ValueError, KeyError):
            return self.organization.tz

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.tz)

    @property
    def first_name(self) -> str:
        return (self.contact.name or "").strip().split(" ")[0]

    @property
    def variables(self) -> dict:
        """The template vocabulary the engine always knows (see niches' VARIABLES)."""
        pack = self.niche.agent_pack
        return {
            "first_name": self.first_name,
            "business_name": self.organization.name,
            "agent_name": pack.agent_name if pack else "",
        }

    @property
    def facts(self) -> dict:
        return dict(self.memory.facts or {}) if self.memory is not None else {}

    @property
    def turns(self) -> list:
        return list(self.memory.turns or []) if self.memory is not None else []

    @property
    def agent_active(self) -> bool:
        return self.conversation is None or self.conversation.agent_active

    # --- messages and channels ------------------------------------------------------------
    @cached_property
    def last_inbound(self) -> tuple[datetime | None, str | None]:
        """When and on which channel the contact last wrote (None, None if never)."""
        at = channel = None
        for message in reversed(self.recent_messages):
            if message.direction == "in":
                at, channel = message.created_at, message.channel
                break
        conv = self.conversation
        if conv is not None and conv.last_inbound_at and (at is None or conv.last_inbound_at > at):
            at, channel = conv.last_inbound_at, conv.last_inbound_channel or channel
        if at is None and self.trigger == "message.received" and self.message_given:
            at = self.now  # the message being answered has just arrived
        return at, channel

    @property
    def agent_has_written(self) -> bool:
        return bool(self.facts.get("greeted")) or any(
            m.direction == "out" for m in self.recent_messages
        )

    def opted_out(self, channel: str) -> bool:
        return self.consents.get(channel) == ConsentStatus.OPTED_OUT

    def has_address(self, channel: str) -> bool:
        attr = _ADDRESSABLE.get(channel)
        if attr is None:  # manychat / api: reachable through the conversation
            return self.conversation is not None
        return bool(getattr(self.contact, attr, None))

    def can_write(self, channel: str) -> bool:
        """Not opted out, and consent is not required or given (an opt-in, or a message from
        the contact on the channel recently: see the consent_required rules)."""
        if self.opted_out(channel):
            return False
        if self.consents.get(channel) == ConsentStatus.OPTED_IN:
            return True
        at, last_channel = self.last_inbound
        for rule in self.niche.compliance_rules_of("consent_required", channel):
            config = rule.config or {}
            if channel not in (config.get("channels") or [channel]):
                continue
            window = timedelta(hours=float(config.get("reply_window_hours", 24)))
            if at is None or last_channel not in (channel, None) or self.now - at > window:
                return False
        return True

    @cached_property
    def channel(self) -> str | None:
        """The channel to write on: the one the contact last wrote on (a reply), else the
        first of their source channel, SMS, WhatsApp, email that can be written to now
        (reachable, not opted out, consent given); else the first reachable one (the guard
        then records why nothing can be sent). None when the contact cannot be reached."""
        _, last_channel = self.last_inbound
        if last_channel and not self.opted_out(last_channel):
            return last_channel
        candidates = []
        if self.contact.source in Channel.values:
            candidates.append(self.contact.source)
        candidates += [Channel.SMS.value, Channel.WHATSAPP.value, Channel.EMAIL.value]
        reachable = [
            c for i, c in enumerate(candidates) if c not in candidates[:i] and self.has_address(c)
        ]
        for channel in reachable:
            if self.can_write(channel):
                return channel
        if last_channel:
            return last_channel
        return reachable[0] if reachable else None

    # --- bookings -------------------------------------------------------------------------
    @property
    def upcoming_bookings(self) -> list:
        return [b for b in self.bookings if b.status in LIVE_STATUSES and b.start >= self.now]

    @property
    def last_no_show(self):
        missed = [b for b in self.bookings if b.status == BookingStatus.NO_SHOW]
        return missed[-1] if missed else None

    @property
    def appointment_types(self) -> list:
        if self._types is None:
            self._types = list(
                AppointmentType.objects.filter(
                    organization=self.organization, is_active=True
                ).order_by("name")
            )
        return self._types

    def appointment_type_named(self, name: str | None):
        """The organization's active type called `name` (a workflow step names one), else
        the first active type (by name); None when the organization has none."""
        types = self.appointment_types
        if name:
            wanted = name.strip().casefold()
            for kind in types:
                if kind.name.casefold() == wanted or kind.slug == wanted.replace(" ", "-"):
                    return kind
        return types[0] if types else None

    def appointment_type_of(self, view):
        """The organization's active AppointmentType behind a booking's `TypeView` (None
        when it was switched off or deleted)."""
        return next((t for t in self.appointment_types if t.pk == view.pk), None)

    def free_slots(self, appointment_type) -> list[Slot]:
        """Up to three free starts, spread over different days where possible, within the
        next 7 days (30 when the week is full). Real availability: `slots_compute`."""
        if appointment_type.pk in self._slots:
            return self._slots[appointment_type.pk]
        found: list[Slot] = []
        for window in SLOT_WINDOWS:
            try:
                found = slots_compute(
                    organization=self.organization,
                    appointment_type=appointment_type,
                    start=self.now,
                    end=self.now + window,
                    now=self.now,
                )
            except DomainError:  # inactive type or no eligible resource
                found = []
            if found:
                break
        self._slots[appointment_type.pk] = _spread(found, self.tz, SLOTS_OFFERED)
        return self._slots[appointment_type.pk]

    # --- digest ---------------------------------------------------------------------------
    def summary(self) -> dict:
        """A compact snapshot of the inputs, stored with the decision (and hashed)."""
        last_at, last_channel = self.last_inbound
        lead = self.lead
        return {
            "niche": self.niche.niche.slug,
            "trigger": self.trigger,
            "message": self.message[:500],
            "local_time": self.local_now.isoformat(timespec="minutes"),
            "timezone": self.tz.key,
            "channel": self.channel,
            "last_inbound_at": last_at.isoformat() if last_at else None,
            "last_inbound_channel": last_channel,
            "agent_active": self.agent_active,
            "consents": self.consents,
            "lead": {
                "id": str(lead.pk),
                "status": lead.status,
                "score": lead.score,
                "answers": lead.answers,
            }
            if lead
            else None,
            "deals": [{"id": str(d.pk), "stage": d.stage.name} for d in self.deals],
            "bookings": [
                {"id": str(b.pk), "start": b.start.isoformat(), "status": b.status}
                for b in self.bookings
            ],
            "memory": {
                key: self.facts.get(key)
                for key in ("greeted", "pending_question", "unclear_streak")
                if key in self.facts
            },
            "recent_messages": len(self.recent_messages),
        }

    def digest(self) -> str:
        return inputs_digest(self.summary())


def inputs_digest(summary: dict) -> str:
    """sha256 of a context summary (canonical JSON)."""
    payload = json.dumps(summary, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _spread(slots: list[Slot], tz: ZoneInfo, limit: int) -> list[Slot]:
    """The first slot of each local day, then the next ones, up to `limit`, in time order."""
    chosen: list[Slot] = []
    days: set = set()
    for slot in slots:
        day = slot.start.astimezone(tz).date()
        if day not in days:
            days.add(day)
            chosen.append(slot)
        if len(chosen) == limit:
            break
    for slot in slots:
        if len(chosen) >= limit:
            break
        if slot not in chosen:
            chosen.append(slot)
    return sorted(chosen, key=lambda s: s.start)


def decision_context_load(
    *,
    organization,
    contact,
    conversation=None,
    trigger: str,
    message: str = "",
    purpose: str | None = None,
    now: datetime | None = None,
    simulate: bool = False,
) -> DecisionContext:
    """Build the context of one decision. Reads only (see the module docstring for the cost).

    `contact` should come with its conversation and memory preloaded
    (`selectors.decision_subject_get`). When `message` is empty and the trigger is
    `message.received`, the contact's last inbound message is the one answered.
    """
    now = now or timezone.now()
    if conversation is None:
        conversation = related_or_none(contact, "conversation")
    memory = related_or_none(contact, "decision_memory")
    with connection.cursor() as cursor:
        cursor.execute(
            _CONTEXT_SQL,
            {
                "org": organization.pk,
                "contact": contact.pk,
                "conversation": conversation.pk if conversation is not None else None,
                "open": list(OPEN_LEAD_STATUSES),
                "since": now - BOOKINGS_LOOKBACK,
            },
        )
        consents, lead_row, deal_rows, booking_rows, message_rows = cursor.fetchone()
    lead = None
    if lead_row:
        lead = LeadView(
            pk=uuid.UUID(lead_row["id"]),
            status=lead_row["status"],
            score=lead_row["score"],
            score_reasons=lead_row["score_reasons"] or [],
            answers=lead_row["answers"] or {},
            source=lead_row["source"],
        )
    deals = [deal for row in deal_rows if (deal := _deal(row)) is not None]
    bookings = [_booking(row) for row in booking_rows]
    recent = [
        MessageView(
            direction=row["direction"],
            channel=row["channel"],
            text=row["text"] or "",
            created_at=_time(row["created_at"]),
        )
        for row in message_rows
    ]
    text = (message or "").strip()
    given = bool(text)
    if not text and trigger == "message.received":
        for item in reversed(recent):
            if item.direction == "in" and item.text.strip():
                text = item.text.strip()
                break
    return DecisionContext(
        organization=organization,
        niche=niche_context(organization=organization),
        trigger=trigger,
        message=text,
        message_given=given,
        purpose=purpose,
        now=now,
        contact=contact,
        conversation=conversation,
        memory=memory,
        consents=consents,
        lead=lead,
        deals=deals,
        bookings=bookings,
        recent_messages=recent,
        simulate=simulate,
    )
