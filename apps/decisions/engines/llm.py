"""The LLM engine: any OpenAI-compatible chat-completions server (`DECISION_ENGINE=llm`).

One call: `POST {LLM_API_BASE}/chat/completions` with `Authorization: Bearer LLM_API_KEY`,
`model: LLM_MODEL`, a system prompt assembled from the niche (its `system` prompt, the agent
pack's persona and tone, the compliance rules) and a user message carrying the decision
context as JSON, and `response_format: {"type": "json_schema", ...}` with
`PROPOSAL_SCHEMA`: the model proposes actions in a compact form that needs no ids it could
get wrong (`{"type": "offer_slots", "appointment_type": "free-trial-class", "starts":
[...]}`); `proposals_complete` turns them into full actions, checking every reference
against the context (slots must be free and offered, deals and bookings the contact's, ...).

Timeouts (`LLM_TIMEOUT_SECONDS`, default 10 s per attempt), at most `LLM_MAX_ATTEMPTS`
attempts (default 2; retried: connection errors, timeouts, 429 and 5xx, with a short
backoff and jitter). Token usage is recorded. Anything wrong — transport error, HTTP
error, malformed JSON, output that breaks the schema, a reference that does not check out,
or a text that breaks a blocking compliance rule — raises `LLMFailure`, and the caller
falls back to the rules engine (saying why). Never called inside a database transaction:
the decision service runs engines before it opens one.
"""

from __future__ import annotations

import json
import logging
import random
import time
import zoneinfo
from datetime import datetime, timedelta

import requests
from django.conf import settings
from jsonschema import Draft202012Validator

from apps.bookings.slots import slots_compute
from apps.core import tracing
from apps.core.choices import Channel
from apps.core.errors import DomainError
from apps.decisions import actions as A
from apps.decisions.engines.answers import answer_rules
from apps.decisions.engines.base import EngineResult, parse_iso, render

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.05
DEFAULT_ATTEMPTS = 2
MAX_BODY = 1000
MAX_FOLLOW_UP_HOURS = 24 * 30
_RETRY_STATUSES = {429, 500, 502, 503, 504}


class LLMFailure(Exception):
    """The LLM could not be used for this decision; `str()` says why (shown to the caller)."""

    def __init__(self, reason: str, *, prompt_tokens=None, completion_tokens=None):
        super().__init__(reason)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


_S = {"type": "string"}


def _proposal(type_: str, properties: dict) -> dict:
    props = {"type": {"type": "string", "enum": [type_]}, **properties}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


PROPOSALS = {
    A.SEND_MESSAGE: _proposal(
        A.SEND_MESSAGE,
        {"body": _S, "purpose": {"type": "string", "enum": list(A.MESSAGE_PURPOSES)}},
    ),
    A.OFFER_SLOTS: _proposal(
        A.OFFER_SLOTS, {"appointment_type": _S, "starts": {"type": "array", "items": _S}}
    ),
    A.BOOK_APPOINTMENT: _proposal(
        A.BOOK_APPOINTMENT,
        {"appointment_type": _S, "start": _S, "booking_id": _nullable(_S)},
    ),
    A.UPDATE_CONTACT: _proposal(
        A.UPDATE_CONTACT,
        {
            "name": _nullable(_S),
            "timezone": _nullable(_S),
            "add_tags": {"type": "array", "items": _S},
            "opt_out_channel": _nullable(_S),
        },
    ),
    A.UPDATE_LEAD: _proposal(
        A.UPDATE_LEAD,
        {
            "answers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": _S, "value": _S},
                    "required": ["field", "value"],
                    "additionalProperties": False,
                },
            },
            "status": {"type": ["string", "null"], "enum": [*A.LEAD_STATUSES, None]},
            "reason": _nullable(_S),
        },
    ),
    A.MOVE_DEAL: _proposal(A.MOVE_DEAL, {"deal_id": _S, "stage": _S}),
    A.CREATE_TASK: _proposal(
        A.CREATE_TASK,
        {"title": _S, "description": _S, "due_in_hours": {"type": ["number", "null"]}},
    ),
    A.ESCALATE_TO_HUMAN: _proposal(
        A.ESCALATE_TO_HUMAN,
        {"reason": _S, "priority": {"type": "string", "enum": list(A.PRIORITIES)}},
    ),
    A.SCHEDULE_FOLLOW_UP: _proposal(
        A.SCHEDULE_FOLLOW_UP,
        {
            "in_hours": {"type": "number"},
            "purpose": {"type": "string", "enum": list(A.MESSAGE_PURPOSES)},
            "note": _S,
        },
    ),
    A.NO_ACTION: _proposal(A.NO_ACTION, {"reason": _S}),
}
PROPOSAL_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": _S,
        "rationale": _S,
        "actions": {"type": "array", "items": {"anyOf": [PROPOSALS[t] for t in A.ACTION_TYPES]}},
    },
    "required": ["intent", "rationale", "actions"],
    "additionalProperties": False,
}
_VALIDATOR = Draft202012Validator(PROPOSAL_SCHEMA)

INSTRUCTIONS = """
You decide what the assistant does next in this conversation, as a list of actions.
Answer ONLY with a JSON object matching the response schema: {"intent", "rationale", "actions"}.

Action types:
- send_message {body, purpose}: one short text message to the contact (under 320 characters,
  plain text, no emojis). Use the niche prompts below as the model for wording.
- offer_slots {appointment_type, starts}: offer times; `starts` must be copied exactly from
  `free_slots` in the context. Always pair it with a send_message listing those times.
- book_appointment {appointment_type, start, booking_id}: only for a time the contact picked
  from `offered_slots` or `free_slots` (copy `start` exactly); booking_id = an upcoming
  booking's id to move it, else null.
- update_lead {answers, status, reason}: record qualification answers the contact gave
  (field names from `lead.questions`); status only "qualified" or "disqualified" when clear.
- update_contact {name, timezone, add_tags, opt_out_channel}: opt_out_channel when the
  contact asks to stop messages on a channel (then send nothing).
- move_deal {deal_id, stage}: only a deal and stage listed in `deals`.
- create_task {title, description, due_in_hours}: work for the team.
- escalate_to_human {reason, priority}: when a person must take over.
- schedule_follow_up {in_hours, purpose, note}: check back later if the contact goes quiet.
- no_action {reason}: when nothing should be done (alone).
Never invent times, prices, ids or facts that are not in the context.
""".strip()


def _timeout() -> float:
    return float(getattr(settings, "LLM_TIMEOUT_SECONDS", DEFAULT_TIMEOUT))


def _attempts() -> int:
    return max(1, int(getattr(settings, "LLM_MAX_ATTEMPTS", DEFAULT_ATTEMPTS)))


_session: requests.Session | None = None


def _http() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
    return _session


# --- prompt -------------------------------------------------------------------------------


def _iso_local(value: datetime, tz) -> str:
    return value.astimezone(tz).isoformat(timespec="minutes")


def llm_context(ctx) -> dict:
    """The decision context as the model sees it (plain JSON; no internal ids but the
    ones an action must name)."""
    tz = ctx.tz
    lead = ctx.lead
    known = {**(ctx.facts.get("answers") or {}), **((lead.answers or {}) if lead else {})}
    kind = ctx.appointment_type_named(_offer_type_name(ctx))
    free = {}
    if kind is not None:
        free[kind.slug] = [A.iso(s.start) for s in ctx.free_slots(kind)]
    for booking in ctx.upcoming_bookings[:1]:
        other = ctx.appointment_type_of(booking.appointment_type)
        if other is not None and other.slug not in free:
            free[other.slug] = [A.iso(s.start) for s in ctx.free_slots(other)]
    return {
        "trigger": ctx.trigger,
        "message": ctx.message,
        "local_time": _iso_local(ctx.now, tz),
        "timezone": tz.key,
        "channel": ctx.channel,
        "contact": {
            "first_name": ctx.first_name,
            "lifecycle_stage": ctx.contact.lifecycle_stage,
            "tags": list(ctx.contact.tags or []),
        },
        "lead": {
            "status": lead.status,
            "score": lead.score,
            "answers": lead.answers,
            "questions": [
                {
                    "field": r.answer_field,
                    "question": r.question,
                    "answered": r.answer_field in known,
                }
                for r in answer_rules(ctx.niche)
            ],
        }
        if lead
        else None,
        "deals": [
            {
                "deal_id": str(d.pk),
                "title": d.title,
                "stage": d.stage.name,
                "stages": [s.name for s in d.stages],
            }
            for d in ctx.deals
        ],
        "upcoming_bookings": [
            {
                "booking_id": str(b.pk),
                "appointment_type": b.appointment_type.slug,
                "local_start": _iso_local(b.start, tz),
            }
            for b in ctx.upcoming_bookings
        ],
        "appointment_types": [
            {
                "slug": t.slug,
                "name": t.name,
                "minutes": t.duration_minutes,
                "price": str(t.price) if t.price is not None else None,
            }
            for t in ctx.appointment_types
        ],
        "free_slots": free,
        "offered_slots": [s.get("start") for s in ctx.facts.get("offered_slots") or []],
        "objections": [
            {
                "name": o.name,
                "trigger_phrases": list(o.trigger_phrases),
                "response": o.response_template,
            }
            for o in ctx.niche.objections
        ],
        "prompts": {p.key: p.template for p in ctx.niche.prompts.values() if p.purpose != "system"},
        "memory": {"summary": ctx.memory.summary if ctx.memory else "", "turns": ctx.turns[-5:]},
        "recent_messages": [
            {"direction": m.direction, "text": m.text[:500], "at": _iso_local(m.created_at, tz)}
            for m in ctx.recent_messages
        ],
    }


def _offer_type_name(ctx) -> str | None:
    for workflow in ctx.niche.workflows:
        if workflow.trigger == "lead.created":
            for step in workflow.steps:
                if step.get("action") == "offer_slots":
                    return step.get("appointment_type")
    return None


def llm_messages(ctx) -> list[dict]:
    """[system, user]: the niche's system prompt, persona and rules; the context as JSON."""
    niche = ctx.niche
    parts = []
    system = niche.prompt_for_purpose("system")
    if system is not None:
        parts.append(render(system.template, ctx.variables))
    if niche.agent_pack is not None:
        parts.append(f"Persona: {niche.agent_pack.persona}\nTone: {niche.agent_pack.tone}")
    rules = [
        f"- {r.name}" + (f": {r.pattern}" if r.kind == "forbidden_phrase" else "")
        for r in niche.compliance_rules
        if r.kind in ("forbidden_phrase", "required_disclaimer")
    ]
    if rules:
        parts.append("Compliance rules (a reply breaking one is rejected):\n" + "\n".join(rules))
    parts.append(INSTRUCTIONS)
    return [
        {"role": "system", "content": "\n\n".join(parts)},
        {"role": "user", "content": json.dumps(llm_context(ctx), default=str)},
    ]


def llm_request_body(ctx) -> dict:
    return {
        "model": settings.LLM_MODEL,
        "messages": llm_messages(ctx),
        "temperature": 0.2,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "decision", "strict": True, "schema": PROPOSAL_SCHEMA},
        },
    }


# --- transport ----------------------------------------------------------------------------


def llm_call(body: dict) -> dict:
    """POST the chat completion; the parsed JSON response. Raises LLMFailure."""
    url = settings.LLM_API_BASE.rstrip("/") + "/chat/completions"
    headers = {
        "Authorization": f"Bearer {settings.LLM_API_KEY}",
        "Content-Type": "application/json",
        "traceparent": tracing.outgoing_traceparent(),
    }
    attempts = _attempts()
    last = "no attempt"
    for attempt in range(1, attempts + 1):
        try:
            response = _http().post(
                url, json=body, headers=headers, timeout=(CONNECT_TIMEOUT, _timeout())
            )
        except requests.Timeout:
            last = f"timed out after {_timeout():g} s"
        except requests.RequestException as exc:
            last = f"connection failed ({exc.__class__.__name__})"
        else:
            if response.status_code < 300:
                try:
                    return response.json()
                except ValueError:
                    raise LLMFailure("the LLM server answered with invalid JSON") from None
            last = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUSES:
                break
        if attempt < attempts:
            time.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random()))
    raise LLMFailure(f"LLM request failed: {last} ({attempt} attempt(s))")


def llm_parse(payload: dict) -> tuple[dict, int | None, int | None]:
    """The proposal object and token usage from a chat-completions response."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    prompt_tokens = completion_tokens = None
    if isinstance(usage, dict):
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
    tokens = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMFailure("the LLM response has no message content", **tokens) from None
    if not isinstance(content, str):
        raise LLMFailure("the LLM response has no text content", **tokens)
    try:
        proposal = json.loads(content)
    except ValueError:
        raise LLMFailure("the LLM output is not valid JSON", **tokens) from None
    error = next(iter(_VALIDATOR.iter_errors(proposal)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise LLMFailure(f"the LLM output breaks the schema at {where}: {error.message}", **tokens)
    return proposal, prompt_tokens, completion_tokens


# --- completing proposals -----------------------------------------------------------------


class _Unsafe(Exception):
    pass


def _type_by_slug(ctx, slug: str):
    kind = next((t for t in ctx.appointment_types if t.slug == slug), None)
    if kind is None:
        raise _Unsafe(f"unknown appointment type {slug!r}")
    return kind


def _free_at(ctx, kind, start: datetime):
    try:
        found = slots_compute(
            organization=ctx.organization,
            appointment_type=kind,
            start=start,
            end=start + timedelta(microseconds=1),
            now=ctx.now,
        )
    except DomainError:
        return None
    return found[0] if found else None


def _complete_one(ctx, proposal: dict) -> dict | None:
    kind_ = proposal["type"]
    if kind_ == A.SEND_MESSAGE:
        body = proposal["body"].strip()
        if not body:
            raise _Unsafe("an empty message")
        if len(body) > MAX_BODY:
            raise _Unsafe(f"a message of {len(body)} characters")
        if ctx.channel is None:
            return None
        return A.send_message(
            channel=ctx.channel,
            body=body,
            purpose=proposal["purpose"],
            is_reply=ctx.trigger == "message.received",
        )
    if kind_ == A.OFFER_SLOTS:
        kind = _type_by_slug(ctx, proposal["appointment_type"])
        free = {A.iso(s.start): s for s in ctx.free_slots(kind)}
        starts = [parse_iso(s) for s in proposal["starts"]]
        chosen = [free.get(A.iso(s)) if s else None for s in starts]
        if not chosen or None in chosen:
            raise _Unsafe("offered a time that is not a free slot")
        items = [
            A.slot_item(start=s.start, end=s.end, tz=ctx.tz, resource_id=s.resource_ids[0])
            for s in chosen
        ]
        return A.offer_slots(appointment_type=kind, tz=ctx.tz, slots=items)
    if kind_ == A.BOOK_APPOINTMENT:
        kind = _type_by_slug(ctx, proposal["appointment_type"])
        start = parse_iso(proposal["start"])
        slot = _free_at(ctx, kind, start) if start else None
        if slot is None:
            raise _Unsafe("tried to book a time that is not free")
        booking_id = proposal["booking_id"]
        if booking_id and booking_id not in {str(b.pk) for b in ctx.upcoming_bookings}:
            raise _Unsafe("tried to move a booking that is not the contact's")
        return A.book_appointment(
            appointment_type=kind,
            start=start,
            tz=ctx.tz,
            resource_id=slot.resource_ids[0],
            booking_id=booking_id,
        )
    if kind_ == A.UPDATE_CONTACT:
        fields: dict = {}
        if proposal["name"]:
            fields["name"] = proposal["name"][:200]
        if proposal["timezone"]:
            if proposal["timezone"] not in zoneinfo.available_timezones():
                raise _Unsafe(f"unknown time zone {proposal['timezone']!r}")
            fields["timezone"] = proposal["timezone"]
        tags = [t[:50] for t in proposal["add_tags"] if t.strip()]
        if tags:
            fields["tags"] = list(dict.fromkeys([*(ctx.contact.tags or []), *tags]))
        consent = {}
        channel = proposal["opt_out_channel"]
        if channel:
            if channel not in Channel.values:
                raise _Unsafe(f"unknown channel {channel!r}")
            consent[channel] = {"opted_in": False, "reason": "asked to stop (LLM)"}
        if not fields and not consent:
            return None
        return A.update_contact(fields=fields, consent=consent)
    if kind_ == A.UPDATE_LEAD:
        if ctx.lead is None:
            return None
        answers = {a["field"][:50]: a["value"][:200] for a in proposal["answers"] if a["field"]}
        return A.update_lead(
            lead_id=ctx.lead.pk,
            answers=answers,
            status=proposal["status"],
            reason=proposal["reason"],
        )
    if kind_ == A.MOVE_DEAL:
        deal = next((d for d in ctx.deals if str(d.pk) == proposal["deal_id"]), None)
        if deal is None:
            raise _Unsafe("tried to move a deal that is not the contact's")
        stage = next(
            (s for s in deal.stages if s.name.casefold() == proposal["stage"].strip().casefold()),
            None,
        )
        if stage is None:
            raise _Unsafe(f"unknown stage {proposal['stage']!r}")
        return A.move_deal(deal_id=deal.pk, stage=stage.name, stage_id=stage.pk)
    if kind_ == A.CREATE_TASK:
        hours = proposal["due_in_hours"]
        if hours is not None and not 0 <= hours <= MAX_FOLLOW_UP_HOURS:
            raise _Unsafe("a task due outside the next 30 days")
        if not proposal["title"].strip():
            raise _Unsafe("a task without a title")
        return A.create_task(
            title=proposal["title"].strip(),
            description=proposal["description"],
            due_at=ctx.now + timedelta(hours=hours) if hours is not None else None,
            deal_id=ctx.deals[0].pk if ctx.deals else None,
        )
    if kind_ == A.ESCALATE_TO_HUMAN:
        return A.escalate_to_human(reason=proposal["reason"], priority=proposal["priority"])
    if kind_ == A.SCHEDULE_FOLLOW_UP:
        hours = proposal["in_hours"]
        if not 0 < hours <= MAX_FOLLOW_UP_HOURS:
            raise _Unsafe("a follow-up outside the next 30 days")
        return A.schedule_follow_up(
            at=ctx.now + timedelta(hours=hours), purpose=proposal["purpose"], note=proposal["note"]
        )
    return A.no_action(reason=proposal["reason"])


def proposals_complete(ctx, proposals: list[dict]) -> list[dict]:
    """Full actions for the model's proposals; raises LLMFailure when one is unsafe."""
    from apps.decisions.guard import content_violations

    completed = []
    for index, proposal in enumerate(proposals):
        try:
            action = _complete_one(ctx, proposal)
        except _Unsafe as exc:
            raise LLMFailure(f"unsafe proposal (action {index}): {exc}") from None
        if action is None:
            continue
        if action["type"] == A.SEND_MESSAGE:
            violations = content_violations(ctx, action["body"], action["channel"])
            if violations:
                rule, match = violations[0]
                raise LLMFailure(
                    f'unsafe proposal (action {index}): "{match.group(0)[:60]}" breaks '
                    f"compliance rule {rule.key}"
                )
        completed.append(action)
    if len(completed) > 1:
        completed = [a for a in completed if a["type"] != A.NO_ACTION]
    errors = A.actions_errors(completed)
    if errors:
        raise LLMFailure(f"invalid actions: {errors[0]}")
    return completed


class LLMEngine:
    name = "llm"

    def decide(self, ctx) -> EngineResult:
        """Ask the model; raise LLMFailure for anything unusable (see the module docstring)."""
        if not settings.LLM_API_BASE:
            raise LLMFailure("LLM_API_BASE is not configured")
        started = time.monotonic()
        payload = llm_call(llm_request_body(ctx))
        proposal, prompt_tokens, completion_tokens = llm_parse(payload)
        try:
            actions = proposals_complete(ctx, proposal["actions"])
        except LLMFailure as exc:
            exc.prompt_tokens, exc.completion_tokens = prompt_tokens, completion_tokens
            raise
        if not actions:
            actions = [
                A.no_action(reason=proposal["rationale"][:300] or "The model proposed nothing.")
            ]
        logger.info("llm decision in %.0f ms", (time.monotonic() - started) * 1000)
        return EngineResult(
            engine="llm",
            actions=actions,
            rationale=proposal["rationale"][:2000],
            intent=proposal["intent"][:32],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
