"""The rules engine: deterministic, offline, niche-aware. The default engine.

Per trigger:

- `message.received` (and `manual` with a message): detect the intent
  (`engines.intents`), record any qualification answers the message gives (`update_lead`),
  then answer: opt-outs are recorded (`update_contact` consent) and nothing is sent; a
  request for a person, or a clinical / legal / safety topic of the niche, is escalated with
  the hand-off message; cancel and reschedule act on the upcoming booking; a picked slot is
  booked (after checking it is still free) and the deal moves to its "booked" stage; an
  objection is answered from the niche's library; a booking request gets real free slots;
  otherwise the engine walks the niche's qualification questions (the next unanswered one)
  and offers slots once they are answered (real estate and consultants: once qualified).
- `lead.created`: the niche's greeting (the lead workflow's first step) and a follow-up
  when the lead stays quiet (the workflow's `wait_for_reply` timeout).
- `booking.no_show`: the niche's no-show message with new free slots (after the workflow's
  delay), and a follow-up.
- `deal.won`: the niche's onboarding workflow (message, tag, tasks).
- `follow_up_due`: nothing if the contact replied or booked meanwhile; else the follow-up
  message (a WhatsApp template outside the 24-hour window, see the guard) and the
  workflow's task for the team; after two unanswered follow-ups, only the task.
- `manual` without a message: the next step of the conversation.

Replies are rendered from the niche's prompts (with the organization's overrides) through
`prompt_render`; where the niche has no prompt for a purpose, `phrases.DEFAULT_TEMPLATES`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from apps.bookings.slots import slots_compute
from apps.core.errors import DomainError
from apps.decisions import actions as A
from apps.decisions.engines import phrases
from apps.decisions.engines.answers import answer_rules, answers_extract, score_project
from apps.decisions.engines.base import (
    EngineResult,
    clock,
    day_label,
    parse_duration,
    parse_iso,
    render,
    slot_label,
)
from apps.decisions.engines.intents import intent_detect

_ORDER = {
    A.UPDATE_CONTACT: 0,
    A.UPDATE_LEAD: 1,
    A.BOOK_APPOINTMENT: 2,
    A.MOVE_DEAL: 3,
    A.OFFER_SLOTS: 4,
    A.SEND_MESSAGE: 5,
    A.CREATE_TASK: 6,
    A.SCHEDULE_FOLLOW_UP: 7,
    A.ESCALATE_TO_HUMAN: 8,
    A.NO_ACTION: 9,
}
MAX_FOLLOW_UPS = 2
OBJECTION_FOLLOW_UP = timedelta(days=3)
DEFAULT_REPLY_WAIT = timedelta(days=1)
BOOKED_STAGE_MARKERS = ("booked", "scheduled")


class RulesEngine:
    name = "rules"

    def decide(self, ctx) -> EngineResult:
        """Propose actions for the context. Deterministic; reads (slots) but never writes."""
        return _Playbook(ctx).run()


class _Playbook:
    def __init__(self, ctx):
        self.ctx = ctx
        self.niche = ctx.niche
        self.actions: list[dict] = []
        self.reasons: list[str] = []
        self.facts: dict = {}
        self.facts_if_sent: dict = {"pending_question": None}
        self.intent = ""
        self.answers: dict = {}

    # --- entry ----------------------------------------------------------------------------
    def run(self) -> EngineResult:
        ctx = self.ctx
        if not ctx.agent_active:
            self.intent = "human_active"
            self.no_action("A person has taken over this conversation (agent inactive).")
        else:
            handler = {
                "message.received": self.on_message,
                "lead.created": self.on_lead_created,
                "booking.no_show": self.on_no_show,
                "deal.won": self.on_deal_won,
                "follow_up_due": self.on_follow_up_due,
                "manual": self.on_manual,
            }[ctx.trigger]
            handler()
        self.finish_answers()
        if not self.actions:
            self.no_action("Nothing to do.")
        self.actions.sort(key=lambda a: _ORDER[a["type"]])
        return EngineResult(
            engine="rules",
            actions=self.actions,
            rationale=" ".join(self.reasons)[:2000],
            intent=self.intent,
            facts=self.facts,
            facts_if_sent=self.facts_if_sent,
        )

    # --- building blocks ------------------------------------------------------------------
    def no_action(self, reason: str) -> None:
        self.actions.append(A.no_action(reason=reason))
        self.reasons.append(reason)

    @property
    def is_reply(self) -> bool:
        return self.ctx.trigger == "message.received"

    def workflow(self, trigger: str):
        return next((w for w in self.niche.workflows if w.trigger == trigger), None)

    def step(self, trigger: str, action: str) -> dict | None:
        workflow = self.workflow(trigger)
        if workflow is None:
            return None
        return next(
            (s for s in workflow.steps if isinstance(s, dict) and s.get("action") == action), None
        )

    def booking_variables(self, booking) -> dict:
        local = booking.start.astimezone(self.ctx.tz)
        return {
            "appointment_type": booking.appointment_type.name,
            "booking_date": day_label(local),
            "booking_time": clock(local),
        }

    def say(
        self,
        purpose: str,
        *,
        key: str | None = None,
        default: str | None = None,
        template: str | None = None,
        extra: dict | None = None,
        send_at: datetime | None = None,
        prefix: str = "",
    ) -> bool:
        """Add a send_message: the niche prompt `key` (or the best one for `purpose`), else
        the default template. False when the contact cannot be reached."""
        ctx = self.ctx
        channel = ctx.channel
        if channel is None:
            self.reasons.append("The contact has no reachable channel; nothing sent.")
            return False
        prompt_key = None
        if template is None:
            prompt = self.niche.prompt(key) if key else None
            if prompt is None and default is None:
                prompt = self.niche.prompt_for_purpose(purpose, channel)
            if prompt is not None and prompt.purpose != "system":
                template, prompt_key = prompt.template, prompt.key
            else:
                template = phrases.DEFAULT_TEMPLATES[default or purpose]
        body = render(template, {**ctx.variables, **(extra or {})})
        if prefix:
            body = f"{render(prefix, ctx.variables)} {body}"
        self.actions.append(
            A.send_message(
                channel=channel,
                body=body,
                purpose=purpose,
                prompt_key=prompt_key,
                send_at=send_at,
                is_reply=self.is_reply,
            )
        )
        return True

    def task(self, title: str, *, due: timedelta | None = None, description: str = "") -> None:
        due_at = self.ctx.now + due if due is not None else None
        deal_id = self.ctx.deals[0].pk if self.ctx.deals else None
        self.actions.append(
            A.create_task(title=title, description=description, due_at=due_at, deal_id=deal_id)
        )

    def escalate(self, reason: str, priority: str = "normal") -> None:
        self.actions.append(A.escalate_to_human(reason=reason, priority=priority))
        self.facts["escalated"] = True
        self.reasons.append(f"Escalated: {reason}")

    def follow_up(self, at: datetime, purpose: str, note: str) -> None:
        self.actions.append(A.schedule_follow_up(at=at, purpose=purpose, note=note))

    @property
    def contact_name(self) -> str:
        return str(self.ctx.contact)

    # --- answers and qualification --------------------------------------------------------
    def known_answers(self) -> dict:
        lead = self.ctx.lead
        return {
            **(self.ctx.facts.get("answers") or {}),
            **((lead.answers or {}) if lead else {}),
            **self.answers,
        }

    def record_answers(self, found: dict) -> None:
        if found:
            self.answers.update(found)

    def finish_answers(self) -> None:
        if not self.answers:
            return
        self.facts["answers"] = {**(self.ctx.facts.get("answers") or {}), **self.answers}
        lead = self.ctx.lead
        fields = ", ".join(f"{k}={v!r}" for k, v in self.answers.items())
        if lead is None:
            self.reasons.append(f"Noted answers ({fields}); the contact has no open lead.")
            return
        if all((lead.answers or {}).get(k) == v for k, v in self.answers.items()):
            return
        score = score_project(self.niche, lead, self.answers)
        status = None
        if (
            lead.status in ("new", "contacted")
            and score is not None
            and score >= self.niche.niche.qualify_threshold
        ):
            status = "qualified"
        self.actions.append(
            A.update_lead(lead_id=lead.pk, answers=dict(self.answers), score=score, status=status)
        )
        self.reasons.append(f"Recorded answers ({fields}); projected score {score}.")
        if status == "qualified":
            self.deal_progress(("qualified",))

    def qualified(self) -> bool:
        lead = self.ctx.lead
        if lead is None:
            return True
        if lead.status == "qualified":
            return True
        score = score_project(self.niche, lead, self.answers)
        return score is not None and score >= self.niche.niche.qualify_threshold

    def question_for(self, rule) -> tuple[str | None, str]:
        """(prompt key, text) asking `rule`: the lead workflow's qualification prompt when it
        is about this rule, else the rule's own question."""
        workflow = self.workflow("lead.created")
        for step in workflow.steps if workflow else ():
            if not isinstance(step, dict) or step.get("action") != "ask_qualification":
                continue
            if rule.key not in (step.get("rules") or []):
                continue
            prompt = self.niche.prompt(step.get("prompt", ""))
            if prompt and (len(step["rules"]) == 1 or rule.answer_field in prompt.key):
                return prompt.key, prompt.template
        return None, rule.question

    def next_step(self, *, prefix: str = "") -> None:
        """Ask the next unanswered qualification question, else offer slots."""
        known = self.known_answers()
        for rule in answer_rules(self.niche):
            if rule.answer_field in known:
                continue
            key, text = self.question_for(rule)
            if not key and not text:
                continue
            if key:
                self.say("qualify", key=key, prefix=prefix)
            else:
                self.say("qualify", template=text, prefix=prefix)
            self.facts_if_sent["pending_question"] = rule.answer_field
            self.reasons.append(f"Asked the next qualification question ({rule.answer_field}).")
            return
        offer_step = self.step("lead.created", "offer_slots")
        if offer_step and offer_step.get("when") == "qualified" and not self.qualified():
            self.say("follow_up", default="soft_close", prefix=prefix)
            self.task(
                f"Review {self.contact_name}: qualification answered, below the threshold",
                due=timedelta(days=1),
            )
            self.reasons.append("All questions answered but the lead is not qualified yet.")
            return
        self.offer(prefix=prefix)

    def greet(self) -> None:
        slug = self.niche.niche.slug
        field = phrases.GREETING_ANSWER_FIELD.get(slug)
        known = self.known_answers()
        if self.answers or (field and field in known):
            self.next_step(prefix=phrases.DEFAULT_TEMPLATES["greeting_prefix"])
            self.reasons.insert(0, "First contact: greeted and moved on (answers already known).")
            return
        step = self.step("lead.created", "send_prompt")
        self.say("greeting", key=step.get("prompt") if step else None)
        self.facts_if_sent["pending_question"] = field
        self.reasons.append("First contact: sent the niche's greeting.")

    # --- bookings ---------------------------------------------------------------------------
    def offer(
        self,
        appointment_type=None,
        *,
        purpose: str = "booking",
        key: str | None = None,
        default: str = "booking",
        extra: dict | None = None,
        none_default: str = "booking_none",
        reschedule=None,
        exclude=None,
        send_at: datetime | None = None,
        prefix: str = "",
    ) -> bool:
        """Offer free slots of `appointment_type` (default: the type the niche's lead workflow
        offers) with the booking prompt; when there are none, say so and create a task."""
        ctx = self.ctx
        exclude = exclude or reschedule
        offer_step = self.step("lead.created", "offer_slots")
        kind = appointment_type or ctx.appointment_type_named(
            offer_step.get("appointment_type") if offer_step else None
        )
        if kind is None:
            self.say("booking", default="handoff", prefix=prefix)
            self.task(f"Book {self.contact_name}: no appointment type is set up", due=timedelta(0))
            self.reasons.append("No active appointment type to offer.")
            return False
        slots = [s for s in ctx.free_slots(kind) if exclude is None or s.start != exclude.start]
        if not slots:
            self.say(
                purpose,
                default=none_default,
                extra={"appointment_type": kind.name, **(extra or {})},
                send_at=send_at,
                prefix=prefix,
            )
            self.task(
                f"Find a time for {self.contact_name}: no free {kind.name} in the next 30 days",
                due=timedelta(hours=2),
            )
            self.reasons.append(f"No free {kind.name} slot in the next 30 days.")
            return False
        items = [
            A.slot_item(
                start=s.start,
                end=s.end,
                tz=ctx.tz,
                resource_id=s.resource_ids[0] if s.resource_ids else None,
            )
            for s in slots
        ]
        self.actions.append(A.offer_slots(appointment_type=kind, tz=ctx.tz, slots=items))
        labels = [slot_label(s.start, ctx.local_now) for s in slots]
        if key is None and default == "booking" and offer_step and offer_step.get("prompt"):
            key = offer_step["prompt"]
        self.say(
            purpose,
            key=key,
            default=default if key is None else None,
            extra={"slots": labels, "appointment_type": kind.name, **(extra or {})},
            send_at=send_at,
            prefix=prefix,
        )
        if reschedule is not None:
            self.facts_if_sent["reschedule_booking_id"] = str(reschedule.pk)
        self.reasons.append(f"Offered {len(items)} free {kind.name} slot(s): {', '.join(labels)}.")
        return True

    def book(self, slot: dict) -> None:
        ctx = self.ctx
        kind = next(
            (t for t in ctx.appointment_types if str(t.pk) == slot.get("appointment_type_id")),
            None,
        )
        start = datetime.fromisoformat(slot["start"].replace("Z", "+00:00"))
        free = []
        if kind is not None:
            try:
                free = slots_compute(
                    organization=ctx.organization,
                    appointment_type=kind,
                    start=start,
                    end=start + timedelta(microseconds=1),
                    now=ctx.now,
                )
            except DomainError:
                free = []
        if not free:
            self.reasons.append("The picked slot is no longer free.")
            self.offer(kind, default="slot_taken")
            return
        resource_id = slot.get("resource_id")
        if resource_id and resource_id not in {str(r) for r in free[0].resource_ids}:
            resource_id = str(free[0].resource_ids[0])
        reschedule_id = ctx.facts.get("reschedule_booking_id")
        self.actions.append(
            A.book_appointment(
                appointment_type=kind,
                start=start,
                tz=ctx.tz,
                resource_id=resource_id,
                booking_id=reschedule_id,
            )
        )
        local = start.astimezone(ctx.tz)
        self.say(
            "booking_confirmation",
            extra={
                "appointment_type": kind.name,
                "booking_date": day_label(local),
                "booking_time": clock(local),
            },
        )
        self.facts["offered_slots"] = []
        self.facts["reschedule_booking_id"] = None
        verb = "Rescheduled" if reschedule_id else "Booked"
        self.reasons.append(f"{verb} {kind.name} at {slot_label(start, ctx.local_now)}.")
        if not reschedule_id:
            self.deal_progress(BOOKED_STAGE_MARKERS)

    def deal_progress(self, markers: tuple[str, ...]) -> None:
        """Move the contact's open deal forward to the first later stage named like `markers`."""
        for deal in self.ctx.deals:
            if any(a["type"] == A.MOVE_DEAL and a["deal_id"] == str(deal.pk) for a in self.actions):
                continue
            for stage in deal.stages:
                if (
                    stage.order > deal.stage.order
                    and not stage.is_won
                    and not stage.is_lost
                    and any(m in stage.name.casefold() for m in markers)
                ):
                    self.actions.append(
                        A.move_deal(deal_id=deal.pk, stage=stage.name, stage_id=stage.pk)
                    )
                    self.reasons.append(f"Deal moves to {stage.name}.")
                    return

    # --- triggers ---------------------------------------------------------------------------
    def on_message(self) -> None:
        ctx = self.ctx
        text = ctx.message
        if not text:
            self.intent = "empty"
            self.no_action("No message to answer.")
            return
        offered = ctx.facts.get("offered_slots") or []
        intent = intent_detect(text, niche=self.niche, offered=offered, tz=ctx.tz, now=ctx.now)
        self.intent = intent.name
        if intent.name.startswith("keyword_") or intent.name == "opt_out":
            self.on_opt_out_or_keyword(intent)
            return
        pending = ctx.facts.get("pending_question")
        self.record_answers(
            answers_extract(
                self.niche,
                text,
                known=self.known_answers(),
                pending_field=pending,
                capture_raw=intent.name == "answer" and bool(pending),
            )
        )
        if intent.name != "answer":
            self.facts["unclear_streak"] = 0
        detail = f' ("{intent.detail}")' if intent.detail else ""
        self.reasons.append(f"Intent: {intent.name}{detail}.")
        getattr(self, f"on_{intent.name}")(intent)

    def on_opt_out_or_keyword(self, intent) -> None:
        if intent.name == "opt_out":
            channel = self.ctx.last_inbound[1] or self.ctx.channel
            if channel is None:
                self.no_action("Asked to stop, but no channel is known.")
                return
            self.actions.append(
                A.update_contact(
                    consent={
                        channel: {"opted_in": False, "reason": f'asked to stop: "{intent.detail}"'}
                    }
                )
            )
            self.facts["follow_ups"] = []
            self.reasons.append(f"The contact asked to stop: opt out of {channel}; nothing sent.")
            return
        keyword = intent.detail
        meaning = {
            "keyword_stop": "opts the contact out and confirms",
            "keyword_start": "opts the contact back in",
            "keyword_help": "answers with the organization's help text",
        }[intent.name]
        self.no_action(f"{keyword} is a compliance keyword: the message ingress {meaning}.")

    def on_human_request(self, intent) -> None:
        self.escalate(f'The contact asked for a person ("{intent.detail}").')
        self.say("handoff", default="handoff")

    def on_bot_question(self, intent) -> None:
        self.say("fallback", default="bot")

    def on_escalate(self, intent) -> None:
        slug = self.niche.niche.slug
        self.escalate(
            f'The contact mentioned "{intent.detail}": a person must answer.', intent.priority
        )
        self.say("handoff", default="emergency" if slug == "local_service" else None)

    def on_health_concern(self, intent) -> None:
        self.say("handoff", default="health_concern")
        self.task(
            f'Coach: {self.contact_name} mentioned "{intent.detail}"; adapt the class and check in',
            due=timedelta(days=1),
            description=f"The contact wrote: {self.ctx.message[:500]}",
        )

    def on_complaint(self, intent) -> None:
        self.escalate(f'Complaint ("{intent.detail}").', "high")
        self.say("handoff", default="complaint")

    def on_fair_housing_question(self, intent) -> None:
        self.say("fallback", default="fair_housing")

    def on_cancel(self, intent) -> None:
        upcoming = self.ctx.upcoming_bookings
        if not upcoming:
            self.say("booking", default="cancel_none")
            self.task(
                f"{self.contact_name} asked to cancel, but has no upcoming booking",
                due=timedelta(hours=2),
            )
            return
        booking = upcoming[0]
        variables = self.booking_variables(booking)
        self.task(
            f"Cancel {variables['appointment_type']} on {variables['booking_date']} at "
            f"{variables['booking_time']} for {self.contact_name} (asked by message)",
            due=timedelta(hours=1),
            description=f"Booking {booking.pk}. The contact wrote: {self.ctx.message[:300]}",
        )
        self.offer(
            self.ctx.appointment_type_of(booking.appointment_type),
            default="cancel",
            none_default="cancel_noslots",
            extra=variables,
            exclude=booking,
        )
        self.reasons.append("Cancellation passed to the team.")

    def on_reschedule(self, intent) -> None:
        upcoming = self.ctx.upcoming_bookings
        if not upcoming:
            self.on_book(intent)
            return
        booking = upcoming[0]
        self.offer(
            self.ctx.appointment_type_of(booking.appointment_type),
            default="reschedule",
            extra=self.booking_variables(booking),
            reschedule=booking,
        )

    def on_book(self, intent) -> None:
        offered = self.ctx.facts.get("offered_slots") or []
        if intent.slot_index is not None and offered:
            self.book(offered[intent.slot_index])
            return
        upcoming = self.ctx.upcoming_bookings
        if upcoming:
            self.say("booking", default="already_booked", extra=self.booking_variables(upcoming[0]))
            return
        self.offer()

    def on_objection(self, intent) -> None:
        objection = next(o for o in self.niche.objections if o.key == intent.detail)
        self.say("objection", template=objection.response_template)
        raised = list(self.ctx.facts.get("objections") or [])
        if objection.key not in raised:
            raised.append(objection.key)
        self.facts["objections"] = raised[-10:]
        self.reasons.append(f"Answered the {objection.name!r} objection from the niche library.")
        if any(marker in objection.key for marker in phrases.FOLLOW_UP_OBJECTIONS):
            self.follow_up(
                self.ctx.now + OBJECTION_FOLLOW_UP, "follow_up", f"objection: {objection.name}"
            )

    def on_not_interested(self, intent) -> None:
        lead = self.ctx.lead
        if lead is not None:
            self.actions.append(
                A.update_lead(
                    lead_id=lead.pk,
                    status="disqualified",
                    reason=f'The contact said "{intent.detail}".',
                )
            )
        self.facts["follow_ups"] = []
        self.say("follow_up", default="not_interested")

    def on_price_question(self, intent) -> None:
        kind = self.ctx.appointment_type_named(
            (self.step("lead.created", "offer_slots") or {}).get("appointment_type")
        )
        price_text = ""
        if kind is not None and kind.price is not None:
            if kind.price == 0:
                price_text = " (it's free)"
            elif kind.currency == "USD":
                price_text = f" (${kind.price:,.2f})".replace(".00)", ")")
            else:
                price_text = f" ({kind.price} {kind.currency})"
        self.say(
            "price",
            default="price",
            extra={
                "appointment_type": kind.name if kind else "first visit",
                "price_text": price_text,
            },
        )

    def on_thanks(self, intent) -> None:
        self.no_action("The contact said thanks; nothing needs an answer.")

    def on_greeting(self, intent) -> None:
        if not self.ctx.agent_has_written:
            self.greet()
        else:
            self.next_step()

    def on_answer(self, intent) -> None:
        if self.answers:
            self.facts["unclear_streak"] = 0
            if not self.ctx.agent_has_written:
                self.greet()
            else:
                self.next_step()
            return
        if not self.ctx.agent_has_written:
            self.facts["unclear_streak"] = 0
            self.greet()
            return
        self.intent = "unclear"
        streak = int(self.ctx.facts.get("unclear_streak") or 0) + 1
        self.facts["unclear_streak"] = streak
        if streak >= 2:
            self.escalate("Two messages in a row the agent could not understand.")
            self.say("handoff", default="handoff")
            return
        self.say("fallback", default="fallback")
        self.facts_if_sent["pending_question"] = self.ctx.facts.get("pending_question")

    def on_lead_created(self) -> None:
        self.intent = "new_lead"
        if self.ctx.upcoming_bookings:
            self.no_action("The contact already has an upcoming booking.")
            return
        if self.ctx.agent_has_written:
            self.next_step()
            return
        self.greet()
        wait = self.step("lead.created", "wait_for_reply")
        delay = parse_duration(wait.get("timeout")) if wait else DEFAULT_REPLY_WAIT
        self.follow_up(self.ctx.now + delay, "follow_up", "No reply to the first message yet.")

    def on_no_show(self) -> None:
        ctx = self.ctx
        self.intent = "no_show"
        missed = ctx.last_no_show
        if ctx.upcoming_bookings:
            self.no_action("The contact already rebooked.")
            return
        if missed is None:
            self.no_action("No missed booking found in the last 30 days.")
            return
        step = self.step("booking.no_show", "send_prompt")
        delay = parse_duration(step.get("delay")) if step else timedelta(0)
        key = step.get("prompt") if step else None
        if key is None and (prompt := self.niche.prompt_for_purpose("no_show")) is not None:
            key = prompt.key
        kind = ctx.appointment_type_of(missed.appointment_type)
        self.offer(
            kind or ctx.appointment_type_named(None),
            purpose="no_show",
            key=key,
            default="no_show_slots",
            none_default="no_show",
            extra=self.booking_variables(missed),
            send_at=ctx.now + delay if delay else None,
        )
        wait = self.step("booking.no_show", "wait_for_reply")
        after = delay + (parse_duration(wait.get("timeout")) if wait else DEFAULT_REPLY_WAIT)
        self.follow_up(ctx.now + after, "no_show", "No reply to the no-show message yet.")

    def on_deal_won(self) -> None:
        ctx = self.ctx
        self.intent = "onboarding"
        workflow = self.workflow("deal.won")
        if workflow is None:
            self.say("onboarding", default="onboarding")
            self.task(f"Welcome {self.contact_name} as a new client", due=timedelta(days=1))
            self.reasons.append("Deal won: welcome message and a task (no onboarding workflow).")
            return
        for step in workflow.steps:
            if not isinstance(step, dict):
                continue
            delay = parse_duration(step.get("delay"))
            action = step.get("action")
            if action == "send_prompt":
                send_at = ctx.now + delay if delay else None
                self.say("onboarding", key=step.get("prompt"), send_at=send_at)
            elif action == "tag_contact":
                tags = list(ctx.contact.tags or [])
                if step["tag"] not in tags:
                    self.actions.append(A.update_contact(fields={"tags": [*tags, step["tag"]]}))
            elif action == "create_task":
                self.task(step["title"], due=delay + parse_duration(step.get("due")))
        self.reasons.append(f"Deal won: the {workflow.name!r} workflow.")

    def on_follow_up_due(self) -> None:
        ctx = self.ctx
        self.intent = "follow_up"
        pending = sorted(ctx.facts.get("follow_ups") or [], key=lambda f: f.get("at") or "")
        due = [f for f in pending if parse_iso(f.get("at")) and parse_iso(f["at"]) <= ctx.now]
        chosen = due[0] if due else (pending[0] if pending else None)
        purpose = ctx.purpose or (chosen or {}).get("purpose") or "follow_up"
        if purpose not in A.MESSAGE_PURPOSES:
            purpose = "follow_up"
        if chosen is not None:
            self.facts["follow_ups"] = [f for f in pending if f is not chosen]
        scheduled_at = parse_iso((chosen or {}).get("scheduled_at"))
        last_in, _ = ctx.last_inbound
        if scheduled_at and last_in and last_in > scheduled_at:
            self.no_action("The contact replied after the follow-up was scheduled.")
            return
        if ctx.upcoming_bookings:
            self.no_action("The contact has booked since; no follow-up needed.")
            return
        sent = int(ctx.facts.get("follow_ups_sent") or 0)
        if sent >= MAX_FOLLOW_UPS:
            self.task(
                f"{self.contact_name} has not answered {sent} follow-ups: call or close",
                due=timedelta(days=1),
            )
            self.reasons.append(f"{sent} follow-ups already unanswered: no more messages.")
            return
        variables = {}
        if purpose == "no_show" and ctx.last_no_show is not None:
            variables = self.booking_variables(ctx.last_no_show)
        default = "no_show" if purpose == "no_show" else "follow_up"
        if self.say(purpose, default=default, extra=variables):
            self.facts["follow_ups_sent"] = sent + 1
        trigger = "booking.no_show" if purpose == "no_show" else "lead.created"
        task_step = self.step(trigger, "create_task")
        if task_step is not None:
            self.task(task_step["title"], due=parse_duration(task_step.get("due")))
        self.reasons.append(f"Follow-up ({purpose}) sent.")

    def on_manual(self) -> None:
        ctx = self.ctx
        if ctx.message_given:
            self.on_message()
            return
        self.intent = "next_step"
        if ctx.upcoming_bookings:
            self.no_action("The contact has an upcoming booking; nothing to do now.")
        elif not ctx.agent_has_written:
            self.greet()
        else:
            self.next_step()
