"""The action vocabulary of the decision API: one JSON schema per action type, and builders.

Every action is a flat JSON object with `type` and ALL of its type's fields (a field that
does not apply is `null`), so n8n can map them onto Core API calls without guessing:

- `send_message`: `channel`, `body`, `purpose`, `prompt_key`, `template` (`{name,
  language, variables, purpose}` when the WhatsApp 24-hour window is closed, else null),
  `send_at` (null = now), `is_reply` → `POST /messages/` at `send_at` (`text` = body,
  `template` = template.name, `template_variables` = template.variables);
- `offer_slots`: `appointment_type` (slug), `appointment_type_id`, `appointment_type_name`,
  `timezone`, `slots` `[{start, end, local_start, resource_id}]` → informational (the
  times are in the message); keep them to book the one the contact picks;
- `book_appointment`: `appointment_type` (slug), `appointment_type_id`, `start`,
  `local_start`, `resource_id`, `booking_id` (set = move that booking) → `POST /bookings/`
  (or `/bookings/<id>/reschedule/`);
- `update_contact`: `fields` (as `PATCH /contacts/<id>/` takes them), `consent`
  (`{channel: {opted_in, reason}}`) → `PATCH /contacts/<id>/`;
- `update_lead`: `lead_id`, `status` (null, `qualified`, `disqualified`), `answers`,
  `score` (projected), `reason` → `PATCH /leads/<id>/` (+ `qualify/`, `disqualify/`);
- `move_deal`: `deal_id`, `stage`, `stage_id` → `POST /deals/<id>/stage/`;
- `create_task`: `title`, `description`, `due_at`, `deal_id` → `POST /tasks/`;
- `escalate_to_human`: `reason`, `priority` → hand the conversation to a person;
- `schedule_follow_up`: `at`, `purpose`, `note` → call the decision API again at `at`
  with `trigger: follow_up_due`;
- `no_action`: `reason`.

`ACTION_SCHEMAS` is the source of truth: responses are validated against it in tests, the
LLM engine's completed actions are validated against it, and the OpenAPI components
(apps/decisions/api.py) mirror it field by field (a test checks that).
"""

from __future__ import annotations

from datetime import UTC, datetime

from jsonschema import Draft202012Validator

from apps.core.choices import Channel

SEND_MESSAGE = "send_message"
OFFER_SLOTS = "offer_slots"
BOOK_APPOINTMENT = "book_appointment"
UPDATE_CONTACT = "update_contact"
UPDATE_LEAD = "update_lead"
MOVE_DEAL = "move_deal"
CREATE_TASK = "create_task"
ESCALATE_TO_HUMAN = "escalate_to_human"
SCHEDULE_FOLLOW_UP = "schedule_follow_up"
NO_ACTION = "no_action"

ACTION_TYPES = (
    SEND_MESSAGE,
    OFFER_SLOTS,
    BOOK_APPOINTMENT,
    UPDATE_CONTACT,
    UPDATE_LEAD,
    MOVE_DEAL,
    CREATE_TASK,
    ESCALATE_TO_HUMAN,
    SCHEDULE_FOLLOW_UP,
    NO_ACTION,
)

# Customer-facing prompt purposes a send may have (see apps.niches.models.PromptPurpose).
MESSAGE_PURPOSES = (
    "greeting",
    "qualify",
    "objection",
    "booking",
    "booking_confirmation",
    "reminder",
    "no_show",
    "reactivation",
    "onboarding",
    "follow_up",
    "price",
    "handoff",
    "fallback",
)
PRIORITIES = ("normal", "high", "urgent")
LEAD_STATUSES = ("qualified", "disqualified")

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_UUID = {"type": "string", "format": "uuid"}
_NUUID = {"type": ["string", "null"], "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": ["string", "null"], "format": "date-time"}


def _action(type_: str, properties: dict) -> dict:
    props = {"type": {"const": type_}, **properties}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


TEMPLATE_SCHEMA = {
    "type": ["object", "null"],
    "properties": {
        "name": _STR,
        "language": _STR,
        "variables": {"type": "array", "items": _STR},
        "purpose": _STR,
    },
    "required": ["name", "language", "variables", "purpose"],
    "additionalProperties": False,
}
SLOT_SCHEMA = {
    "type": "object",
    "properties": {"start": _TIME, "end": _TIME, "local_start": _STR, "resource_id": _NUUID},
    "required": ["start", "end", "local_start", "resource_id"],
    "additionalProperties": False,
}

ACTION_SCHEMAS: dict[str, dict] = {
    SEND_MESSAGE: _action(
        SEND_MESSAGE,
        {
            "channel": {"enum": list(Channel.values)},
            "body": {"type": "string", "minLength": 1, "maxLength": 4000},
            "purpose": {"enum": list(MESSAGE_PURPOSES)},
            "prompt_key": _NSTR,
            "template": TEMPLATE_SCHEMA,
            "send_at": _NTIME,
            "is_reply": {"type": "boolean"},
        },
    ),
    OFFER_SLOTS: _action(
        OFFER_SLOTS,
        {
            "appointment_type": _STR,
            "appointment_type_id": _UUID,
            "appointment_type_name": _STR,
            "timezone": _STR,
            "slots": {"type": "array", "items": SLOT_SCHEMA, "minItems": 1},
        },
    ),
    BOOK_APPOINTMENT: _action(
        BOOK_APPOINTMENT,
        {
            "appointment_type": _STR,
            "appointment_type_id": _UUID,
            "start": _TIME,
            "local_start": _STR,
            "resource_id": _NUUID,
            "booking_id": _NUUID,
        },
    ),
    UPDATE_CONTACT: _action(
        UPDATE_CONTACT,
        {
            "fields": {"type": "object"},
            "consent": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"opted_in": {"type": "boolean"}, "reason": _STR},
                    "required": ["opted_in", "reason"],
                },
            },
        },
    ),
    UPDATE_LEAD: _action(
        UPDATE_LEAD,
        {
            "lead_id": _UUID,
            "status": {"enum": [*LEAD_STATUSES, None]},
            "answers": {"type": "object"},
            "score": {"type": ["integer", "null"]},
            "reason": _NSTR,
        },
    ),
    MOVE_DEAL: _action(MOVE_DEAL, {"deal_id": _UUID, "stage": _STR, "stage_id": _UUID}),
    CREATE_TASK: _action(
        CREATE_TASK,
        {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": _STR,
            "due_at": _NTIME,
            "deal_id": _NUUID,
        },
    ),
    ESCALATE_TO_HUMAN: _action(
        ESCALATE_TO_HUMAN, {"reason": _STR, "priority": {"enum": list(PRIORITIES)}}
    ),
    SCHEDULE_FOLLOW_UP: _action(
        SCHEDULE_FOLLOW_UP, {"at": _TIME, "purpose": {"enum": list(MESSAGE_PURPOSES)}, "note": _STR}
    ),
    NO_ACTION: _action(NO_ACTION, {"reason": _STR}),
}

ACTION_LIST_SCHEMA = {
    "type": "array",
    "items": {"oneOf": [ACTION_SCHEMAS[t] for t in ACTION_TYPES]},
}
_VALIDATORS = {
    type_: Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for type_, schema in ACTION_SCHEMAS.items()
}


def actions_errors(actions) -> list[str]:
    """Schema problems of an action list (empty = valid). Pure."""
    errors = []
    if not isinstance(actions, list):
        return ["actions must be a list"]
    for index, action in enumerate(actions):
        validator = _VALIDATORS.get(action.get("type")) if isinstance(action, dict) else None
        if validator is None:
            errors.append(f"action {index}: unknown type")
            continue
        for error in validator.iter_errors(action):
            where = "/".join(str(p) for p in error.absolute_path) or "(action)"
            errors.append(f"action {index} ({action['type']}) at {where}: {error.message}")
    return errors


# --- builders: every action with every field ------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """An aware datetime as RFC 3339 UTC (`...Z`)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def send_message(
    *,
    channel: str,
    body: str,
    purpose: str,
    prompt_key: str | None = None,
    template: dict | None = None,
    send_at: datetime | None = None,
    is_reply: bool = False,
) -> dict:
    return {
        "type": SEND_MESSAGE,
        "channel": channel,
        "body": body,
        "purpose": purpose,
        "prompt_key": prompt_key,
        "template": template,
        "send_at": iso(send_at),
        "is_reply": is_reply,
    }


def slot_item(*, start: datetime, end: datetime, tz, resource_id) -> dict:
    return {
        "start": iso(start),
        "end": iso(end),
        "local_start": start.astimezone(tz).isoformat(),
        "resource_id": str(resource_id) if resource_id else None,
    }


def offer_slots(*, appointment_type, tz, slots: list[dict]) -> dict:
    return {
        "type": OFFER_SLOTS,
        "appointment_type": appointment_type.slug,
        "appointment_type_id": str(appointment_type.pk),
        "appointment_type_name": appointment_type.name,
        "timezone": tz.key,
        "slots": slots,
    }


def book_appointment(
    *, appointment_type, start: datetime, tz, resource_id=None, booking_id=None
) -> dict:
    return {
        "type": BOOK_APPOINTMENT,
        "appointment_type": appointment_type.slug,
        "appointment_type_id": str(appointment_type.pk),
        "start": iso(start),
        "local_start": start.astimezone(tz).isoformat(),
        "resource_id": str(resource_id) if resource_id else None,
        "booking_id": str(booking_id) if booking_id else None,
    }


def update_contact(*, fields: dict | None = None, consent: dict | None = None) -> dict:
    return {"type": UPDATE_CONTACT, "fields": fields or {}, "consent": consent or {}}


def update_lead(
    *,
    lead_id,
    answers: dict | None = None,
    status: str | None = None,
    score: int | None = None,
    reason: str | None = None,
) -> dict:
    return {
        "type": UPDATE_LEAD,
        "lead_id": str(lead_id),
        "status": status,
        "answers": answers or {},
        "score": score,
        "reason": reason,
    }


def move_deal(*, deal_id, stage: str, stage_id) -> dict:
    return {"type": MOVE_DEAL, "deal_id": str(deal_id), "stage": stage, "stage_id": str(stage_id)}


def create_task(
    *, title: str, description: str = "", due_at: datetime | None = None, deal_id=None
) -> dict:
    return {
        "type": CREATE_TASK,
        "title": title[:200],
        "description": description,
        "due_at": iso(due_at),
        "deal_id": str(deal_id) if deal_id else None,
    }


def escalate_to_human(*, reason: str, priority: str = "normal") -> dict:
    return {"type": ESCALATE_TO_HUMAN, "reason": reason, "priority": priority}


def schedule_follow_up(*, at: datetime, purpose: str, note: str = "") -> dict:
    return {"type": SCHEDULE_FOLLOW_UP, "at": iso(at), "purpose": purpose, "note": note}


def no_action(*, reason: str) -> dict:
    return {"type": NO_ACTION, "reason": reason}
