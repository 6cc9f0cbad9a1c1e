"""The event catalog: every event type Switchboard emits, with its version and data schema.

`emit` refuses a type that is not registered here (a programming error, not bad input),
and validates `data` against the type's JSON schema. `docs/events.md` and
`GET /api/v1/event-types/` are generated from this module.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cached_property

from jsonschema import Draft202012Validator

_TYPE_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")


class UnknownEventType(LookupError):
    """Raised by `emit` for a type missing from the catalog: fix the code, not the input."""


class InvalidEventData(ValueError):
    """Raised by `emit` when `data` does not match the type's schema."""


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    data_schema: dict
    version: int = 1
    example: dict = field(default_factory=dict)

    @cached_property
    def validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.data_schema)

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]


_REGISTRY: dict[str, EventType] = {}


def register(event_type: EventType) -> EventType:
    if not _TYPE_RE.match(event_type.name):
        raise ValueError(f"event type {event_type.name!r} is not dotted lower case")
    if event_type.name in _REGISTRY:
        raise ValueError(f"event type {event_type.name!r} is registered twice")
    Draft202012Validator.check_schema(event_type.data_schema)
    _REGISTRY[event_type.name] = event_type
    return event_type


def get(name: str) -> EventType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownEventType(f"event type {name!r} is not in the catalog") from None


def all_types() -> list[EventType]:
    return sorted(_REGISTRY.values(), key=lambda t: t.name)


def validate_data(event_type: EventType, data: dict) -> None:
    error = next(iter(event_type.validator.iter_errors(data)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidEventData(f"{event_type.name} data at {where}: {error.message}")


def pattern_is_valid(pattern: str) -> bool:
    """A subscription pattern: an exact type, `group.*`, or `*`."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return any(t.group == pattern[:-2] for t in _REGISTRY.values())
    return pattern in _REGISTRY


def pattern_matches(pattern: str, type_name: str) -> bool:
    return fnmatch.fnmatchcase(type_name, pattern)


# --- schemas ---------------------------------------------------------------------------------

UUID = {"type": "string", "format": "uuid"}
NULLABLE_UUID = {"type": ["string", "null"], "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
STR = {"type": "string"}
NULLABLE_STR = {"type": ["string", "null"]}


def _obj(required: dict, optional: dict | None = None) -> dict:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
        "additionalProperties": True,
    }


CONTACT_REF = {"contact_id": UUID}
CONTACT = _obj(
    {"contact_id": UUID},
    {
        "name": STR,
        "email": NULLABLE_STR,
        "phone": NULLABLE_STR,
        "lifecycle_stage": STR,
        "source": STR,
        "tags": {"type": "array", "items": STR},
        "changed": {"type": "array", "items": STR},
        "merged_contact_ids": {"type": "array", "items": UUID},
    },
)
LEAD = _obj(
    {"lead_id": UUID, "contact_id": UUID, "status": STR},
    {
        "score": {"type": "integer"},
        "source": STR,
        "deal_id": NULLABLE_UUID,
        "reasons": {"type": "array"},
    },
)
DEAL = _obj(
    {"deal_id": UUID, "contact_id": NULLABLE_UUID, "stage": STR},
    {
        "pipeline": STR,
        "from_stage": NULLABLE_STR,
        "amount": NULLABLE_STR,
        "currency": STR,
        "title": STR,
    },
)
MESSAGE = _obj(
    {"message_id": UUID, "conversation_id": UUID, "contact_id": UUID, "channel": STR},
    {
        "direction": STR,
        "text": STR,
        "provider": STR,
        "provider_message_id": NULLABLE_STR,
        "status": STR,
        "error_code": NULLABLE_STR,
        "error_reason": NULLABLE_STR,
        "attachments": {"type": "array"},
        "sent_at": NULLABLE_TIME,
    },
)
CONVERSATION = _obj(
    {"conversation_id": UUID, "contact_id": UUID},
    {
        "status": STR,
        "from_status": NULLABLE_STR,
        "assignee_id": NULLABLE_UUID,
        "reason": STR,
        "channel": NULLABLE_STR,
    },
)
BOOKING = _obj(
    {"booking_id": UUID, "contact_id": UUID, "start": TIME, "end": TIME, "status": STR},
    {
        "appointment_type": STR,
        "resource_id": NULLABLE_UUID,
        "previous_start": NULLABLE_TIME,
        "reason": STR,
    },
)
TASK = _obj(
    {"task_id": UUID, "title": STR, "status": STR},
    {
        "contact_id": NULLABLE_UUID,
        "deal_id": NULLABLE_UUID,
        "due_at": NULLABLE_TIME,
        "assignee_id": NULLABLE_UUID,
    },
)
DECISION = _obj(
    {
        "decision_id": UUID,
        "contact_id": UUID,
        "trigger": STR,
        "engine": STR,
        "actions": {"type": "array"},
    },
    {"conversation_id": NULLABLE_UUID, "rationale": STR},
)
INVOICE = _obj(
    {"invoice_id": UUID, "number": STR, "status": STR, "total": STR, "currency": STR},
    {
        "contact_id": NULLABLE_UUID,
        "deal_id": NULLABLE_UUID,
        "due_date": NULLABLE_STR,
        "issue_date": NULLABLE_STR,
        "amount_paid": STR,
        "balance_due": STR,
        "reason": STR,
    },
)
PAYMENT = _obj(
    {"payment_id": UUID, "invoice_id": UUID, "amount": STR, "currency": STR},
    {
        "number": STR,
        "method": STR,
        "reference": STR,
        "received_at": TIME,
        "amount_paid": STR,
        "balance_due": STR,
        "invoice_status": STR,
    },
)
STALE_DEAL = _obj(
    {"deal_id": UUID, "contact_id": NULLABLE_UUID, "stage": STR, "idle_days": {"type": "integer"}},
    {
        "max_idle_days": {"type": "integer"},
        "stage_id": UUID,
        "owner_id": NULLABLE_UUID,
        "task_id": NULLABLE_UUID,
        "amount": NULLABLE_STR,
        "currency": STR,
        "title": STR,
    },
)
CHURN_RISK = _obj(
    {"contact_id": UUID, "signal": STR},
    {
        "reason": STR,
        "owner_id": NULLABLE_UUID,
        "task_id": NULLABLE_UUID,
        "deal_id": NULLABLE_UUID,
        "invoice_id": NULLABLE_UUID,
    },
)
ENDPOINT = _obj({"endpoint_id": UUID, "url": STR, "reason": STR})

_DEFINITIONS = [
    (
        "contact.created",
        "A contact was created (by ingress, the API, an import or a person).",
        CONTACT,
    ),
    (
        "contact.updated",
        "Contact fields changed; `changed` lists them. Also sent after a merge.",
        CONTACT,
    ),
    (
        "contact.opted_out",
        "The contact opted out of a channel (STOP, a provider error, or by hand).",
        _obj({"contact_id": UUID, "channel": STR}, {"reason": STR, "keyword": NULLABLE_STR}),
    ),
    (
        "lead.created",
        "A new lead: a contact showed buying interest (first message, form, import).",
        LEAD,
    ),
    ("lead.qualified", "The lead met the niche's qualification threshold.", LEAD),
    ("lead.disqualified", "The lead was disqualified by rules or by a person.", LEAD),
    ("lead.converted", "The lead became a deal.", LEAD),
    ("deal.created", "A deal was opened in a pipeline.", DEAL),
    ("deal.stage_changed", "A deal moved between stages.", DEAL),
    ("deal.won", "A deal reached a won stage.", DEAL),
    ("deal.lost", "A deal reached a lost stage.", DEAL),
    ("message.received", "An inbound message from a contact was stored and threaded.", MESSAGE),
    ("message.sent", "An outbound message was accepted by its provider.", MESSAGE),
    ("message.delivered", "The provider reported the message delivered.", MESSAGE),
    ("message.read", "The provider reported the message read.", MESSAGE),
    (
        "message.failed",
        "The message could not be sent or delivered; see error_code and error_reason.",
        MESSAGE,
    ),
    ("conversation.created", "A new conversation was opened for a contact.", CONVERSATION),
    (
        "conversation.assigned",
        "A conversation was assigned, reassigned or unassigned.",
        CONVERSATION,
    ),
    (
        "conversation.status_changed",
        "A conversation's status changed (open, pending, snoozed, resolved).",
        CONVERSATION,
    ),
    (
        "conversation.escalated",
        "A conversation was escalated to a human or a supervisor.",
        CONVERSATION,
    ),
    ("booking.scheduled", "A booking was made.", BOOKING),
    ("booking.rescheduled", "A booking moved to a new time.", BOOKING),
    ("booking.cancelled", "A booking was cancelled.", BOOKING),
    (
        "booking.no_show",
        "The contact did not attend (end + grace passed without completion).",
        BOOKING,
    ),
    ("booking.completed", "The booking took place.", BOOKING),
    ("booking.reminder_due", "A reminder for an upcoming booking is due.", BOOKING),
    ("task.created", "A task was created.", TASK),
    ("task.completed", "A task was completed.", TASK),
    ("decision.made", "The decision engine proposed actions for a contact.", DECISION),
    ("invoice.created", "An invoice was issued.", INVOICE),
    ("invoice.paid", "An invoice was paid in full.", INVOICE),
    ("invoice.overdue", "An invoice passed its due date unpaid.", INVOICE),
    ("invoice.sent", "An invoice was issued to the customer (draft → sent).", INVOICE),
    ("invoice.voided", "An invoice was voided; `reason` says why. Its number is kept.", INVOICE),
    (
        "payment.received",
        "A payment was recorded against an invoice (partial or full; a full one is followed "
        "by `invoice.paid`).",
        PAYMENT,
    ),
    (
        "deal.stale",
        "The churn guard found an open deal idle past its stage's `max_idle_days`; a task "
        "was created for the owner. Once per idle episode.",
        STALE_DEAL,
    ),
    (
        "contact.churn_risk",
        "The churn guard found a churn signal on a customer (`signal`: customer_silent, "
        "missed_bookings, overdue_invoice, cancel_intent); a task was created for the owner.",
        CHURN_RISK,
    ),
    (
        "webhook_endpoint.disabled",
        "A webhook endpoint was disabled after failing for too long, or answered 410.",
        ENDPOINT,
    ),
]

for _name, _description, _schema in _DEFINITIONS:
    register(EventType(name=_name, description=_description, data_schema=_schema))
