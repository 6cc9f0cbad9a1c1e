"""The compliance guard: runs after either engine, on the proposed action list.

`compliance_guard(ctx, actions)` applies `GUARDS` in order, each `guard(ctx, actions,
report)` changing the list in place and recording what it did. Rule semantics are the
niches' (docs/niches.md, "Compliance rule semantics"):

1. `forbidden_phrase` (customer-facing text): `block` → the message is replaced by the
   niche's safe reply and the conversation is escalated (if the safe reply breaks a rule
   too, nothing is sent); `rewrite` → every match replaced; `warn` → recorded.
2. `required_disclaimer`: a text on the rule's topic without the disclaimer → `rewrite`
   appends it (after a space), `block` replaces the text as above, `warn` records.
3. opted-out channel (built-in, rule key `contact-opted-out`): nothing is sent on it,
   replies included.
4. `consent_required`: on the rule's channels, a send needs an explicit opt-in, or a
   message from the contact on that channel within `reply_window_hours` (inbound implies
   consent to a reply); otherwise it is blocked.
5. WhatsApp 24-hour window (built-in, `whatsapp-24h-window`): outside it the organization's
   approved template for the purpose (`platform_template_for`, else the follow-up one)
   replaces the text; without one the send is blocked.
6. `quiet_hours` in the contact's time zone (`contact.timezone`, else the organization's):
   a message the business initiates inside the window is held until it ends (`send_at`,
   `block`) or recorded (`warn`); a reply to a message the contact sent within
   `reply_window_minutes` goes out at once.

A blocked action is replaced in place by `no_action` (so `action_index` means the same in
the proposal and in the result); actions the guard adds (an escalation) go at the end.
Every intervention: `{rule, action_index, action_type, outcome, why}` with outcome
`blocked`, `rewritten`, `rescheduled` or `warned`. More guards (a pricing guard, plan
limits) are added by appending to `GUARDS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from apps.core.choices import Channel
from apps.decisions import actions as A
from apps.decisions.engines.base import clock, day_label, parse_iso, render
from apps.decisions.engines.phrases import DEFAULT_TEMPLATES, SAFE_REPLIES
from apps.niches.selectors import platform_template_for
from apps.revenue.pricing import guard_pricing

OPTED_OUT_RULE = "contact-opted-out"
WHATSAPP_WINDOW_RULE = "whatsapp-24h-window"
WHATSAPP_WINDOW = timedelta(hours=24)
CONTENT_KINDS = ("forbidden_phrase", "required_disclaimer")


@dataclass
class ComplianceReport:
    rules_checked: list[str] = field(default_factory=list)
    interventions: list[dict] = field(default_factory=list)
    escalate_reasons: list[str] = field(default_factory=list)

    def record(self, rule: str, index: int, action: dict, outcome: str, why: str) -> None:
        self.interventions.append(
            {
                "rule": rule,
                "action_index": index,
                "action_type": action["type"],
                "outcome": outcome,
                "why": why,
            }
        )

    def checked(self, key: str) -> None:
        if key not in self.rules_checked:
            self.rules_checked.append(key)

    def as_dict(self) -> dict:
        return {
            "rules_checked": self.rules_checked,
            "interventions": self.interventions,
            "passed": not any(i["outcome"] == "blocked" for i in self.interventions),
        }


Guard = Callable[[object, list, ComplianceReport], None]


def _sends(actions: list[dict]):
    for index, action in enumerate(actions):
        if action["type"] == A.SEND_MESSAGE:
            yield index, action


def _block(actions: list[dict], index: int, reason: str) -> None:
    actions[index] = A.no_action(reason=f"Send blocked: {reason}")


def _snippet(match: re.Match) -> str:
    return match.group(0)[:60]


def content_violations(ctx, text: str, channel: str) -> list[tuple[object, re.Match]]:
    """Block-severity forbidden phrases `text` contains, as (rule, match). Pure."""
    found = []
    for rule in ctx.niche.compliance_rules_of("forbidden_phrase", channel):
        if rule.severity != "block":
            continue
        try:
            match = rule.regex().search(text)
        except re.error:
            continue
        if match:
            found.append((rule, match))
    return found


def safe_reply(ctx, channel: str) -> str | None:
    """The niche's safe answer for a blocked reply, if it passes every block rule itself."""
    slug = ctx.niche.niche.slug
    handoff = ctx.niche.prompt_for_purpose("handoff", channel)
    template = SAFE_REPLIES.get(slug) or (
        handoff.template if handoff else DEFAULT_TEMPLATES["handoff"]
    )
    text = render(template, ctx.variables)
    return None if content_violations(ctx, text, channel) else text


def _replace_with_safe_reply(ctx, actions, index, action, report, rule_key, why) -> None:
    text = safe_reply(ctx, action["channel"])
    if text is None:
        _block(actions, index, why)
        report.record(rule_key, index, action, "blocked", f"{why}; nothing sent")
    else:
        actions[index] = {**action, "body": text, "prompt_key": None, "purpose": "handoff"}
        report.record(rule_key, index, action, "blocked", f"{why}; the safe reply was used")
    report.escalate_reasons.append(f"A proposed reply broke compliance rule {rule_key}.")


def guard_forbidden_phrases(ctx, actions: list[dict], report: ComplianceReport) -> None:
    for rule in ctx.niche.compliance_rules_of("forbidden_phrase"):
        report.checked(rule.key)
    for index, action in list(_sends(actions)):
        for rule in ctx.niche.compliance_rules_of("forbidden_phrase", action["channel"]):
            if actions[index]["type"] != A.SEND_MESSAGE:
                break
            try:
                regex = rule.regex()
            except re.error:
                continue
            body = actions[index]["body"]
            match = regex.search(body)
            if not match:
                continue
            why = f'"{_snippet(match)}" is forbidden ({rule.name})'
            if rule.severity == "rewrite":
                actions[index] = {**actions[index], "body": regex.sub(rule.replacement, body)}
                report.record(rule.key, index, action, "rewritten", why)
            elif rule.severity == "warn":
                report.record(rule.key, index, action, "warned", why)
            else:
                _replace_with_safe_reply(ctx, actions, index, action, report, rule.key, why)


def guard_disclaimers(ctx, actions: list[dict], report: ComplianceReport) -> None:
    for rule in ctx.niche.compliance_rules_of("required_disclaimer"):
        report.checked(rule.key)
    for index, action in list(_sends(actions)):
        for rule in ctx.niche.compliance_rules_of("required_disclaimer", action["channel"]):
            current = actions[index]
            if current["type"] != A.SEND_MESSAGE:
                break
            try:
                topic = rule.regex().search(current["body"])
            except re.error:
                continue
            if not topic or rule.replacement.casefold() in current["body"].casefold():
                continue
            why = f'mentions "{_snippet(topic)}" without the disclaimer ({rule.name})'
            if rule.severity == "rewrite":
                actions[index] = {**current, "body": f"{current['body']} {rule.replacement}"}
                report.record(rule.key, index, action, "rewritten", f"{why}; appended")
            elif rule.severity == "warn":
                report.record(rule.key, index, action, "warned", why)
            else:
                _replace_with_safe_reply(ctx, actions, index, action, report, rule.key, why)


def guard_opted_out(ctx, actions: list[dict], report: ComplianceReport) -> None:
    report.checked(OPTED_OUT_RULE)
    for index, action in list(_sends(actions)):
        if ctx.opted_out(action["channel"]):
            why = f"the contact opted out of {action['channel']}"
            _block(actions, index, why)
            report.record(OPTED_OUT_RULE, index, action, "blocked", why)


def last_inbound_on(ctx, channel: str) -> datetime | None:
    at, last_channel = ctx.last_inbound
    if at is not None and last_channel in (channel, None):
        return at  # None: the message being answered, channel unknown (it is the reply's)
    for message in reversed(ctx.recent_messages):
        if message.direction == "in" and message.channel == channel:
            return message.created_at
    return None


def guard_consent(ctx, actions: list[dict], report: ComplianceReport) -> None:
    for rule in ctx.niche.compliance_rules_of("consent_required"):
        report.checked(rule.key)
        channels = set((rule.config or {}).get("channels") or rule.channels or Channel.values)
        window = timedelta(hours=float((rule.config or {}).get("reply_window_hours", 24)))
        for index, action in list(_sends(actions)):
            channel = action["channel"]
            if channel not in channels or not rule.applies_to(channel):
                continue
            if ctx.consents.get(channel) == "opted_in":
                continue
            sent_at = parse_iso(action["send_at"]) or ctx.now
            inbound = last_inbound_on(ctx, channel)
            if inbound is not None and sent_at - inbound <= window:
                continue
            why = (
                f"no opt-in on {channel} and no message from the contact on it in the last "
                f"{window.total_seconds() / 3600:g} hours"
            )
            if rule.severity == "warn":
                report.record(rule.key, index, action, "warned", why)
            else:
                _block(actions, index, why)
                report.record(rule.key, index, action, "blocked", why)


def _template_variables(ctx) -> dict:
    variables = dict(ctx.variables)
    booking = (ctx.upcoming_bookings or [None])[0] or ctx.last_no_show
    if booking is not None:
        local = booking.start.astimezone(ctx.tz)
        variables.update(
            appointment_type=booking.appointment_type.name,
            booking_date=day_label(local),
            booking_time=clock(local),
        )
    return variables


def guard_whatsapp_window(ctx, actions: list[dict], report: ComplianceReport) -> None:
    for index, action in list(_sends(actions)):
        if action["channel"] != Channel.WHATSAPP:
            continue
        report.checked(WHATSAPP_WINDOW_RULE)
        sent_at = parse_iso(action["send_at"]) or ctx.now
        inbound = last_inbound_on(ctx, Channel.WHATSAPP)
        if inbound is not None and sent_at - inbound < WHATSAPP_WINDOW:
            continue
        template = platform_template_for(
            organization=ctx.organization, channel=Channel.WHATSAPP, purpose=action["purpose"]
        ) or platform_template_for(
            organization=ctx.organization, channel=Channel.WHATSAPP, purpose="follow_up"
        )
        if template is None:
            why = "the WhatsApp 24-hour window is closed and no approved template exists"
            _block(actions, index, why)
            report.record(WHATSAPP_WINDOW_RULE, index, action, "blocked", why)
            continue
        variables = _template_variables(ctx)
        values = [str(variables.get(name) or "") for name in template.variables]
        body = template.body
        for number, value in enumerate(values, start=1):
            body = body.replace("{{" + str(number) + "}}", value)
        actions[index] = {
            **actions[index],
            "body": body,
            "template": {
                "name": template.name,
                "language": template.language,
                "variables": values,
                "purpose": template.purpose,
            },
        }
        report.record(
            WHATSAPP_WINDOW_RULE,
            index,
            action,
            "rewritten",
            f"the WhatsApp 24-hour window is closed: approved template {template.name} is used",
        )


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(local: datetime, start: time, end: time) -> datetime | None:
    """The local end of the quiet window `local` falls in, else None (a window crossing
    midnight wraps). The end is read at its first occurrence on DST days."""
    now_t = local.time()
    inside = (now_t >= start or now_t < end) if start > end else (start <= now_t < end)
    if not inside:
        return None
    day = local.date()
    if start > end and now_t >= start:
        day += timedelta(days=1)
    naive = datetime.combine(day, end)
    return naive.replace(tzinfo=local.tzinfo, fold=0)


def guard_quiet_hours(ctx, actions: list[dict], report: ComplianceReport) -> None:
    for rule in ctx.niche.compliance_rules_of("quiet_hours"):
        report.checked(rule.key)
        config = rule.config or {}
        try:
            start, end = _hhmm(config["start"]), _hhmm(config["end"])
        except (KeyError, ValueError, AttributeError):
            continue
        reply_window = timedelta(minutes=float(config.get("reply_window_minutes") or 0))
        for index, action in list(_sends(actions)):
            if not rule.applies_to(action["channel"]):
                continue
            send_at = parse_iso(action["send_at"])
            if send_at is None and action["is_reply"]:
                inbound = last_inbound_on(ctx, action["channel"]) or ctx.last_inbound[0]
                if inbound is not None and ctx.now - inbound <= reply_window:
                    continue
            when = (send_at or ctx.now).astimezone(ctx.tz)
            until = quiet_until(when, start, end)
            if until is None:
                continue
            why = (
                f"{clock(when)} is inside quiet hours ({config['start']}-{config['end']} "
                f"{ctx.tz.key})"
            )
            if rule.severity == "warn":
                report.record(rule.key, index, action, "warned", why)
                continue
            actions[index] = {**actions[index], "send_at": A.iso(until)}
            report.record(
                rule.key, index, action, "rescheduled", f"{why}; held until {clock(until)}"
            )


GUARDS: list[Guard] = [
    guard_forbidden_phrases,
    guard_disclaimers,
    guard_pricing,
    guard_opted_out,
    guard_consent,
    guard_whatsapp_window,
    guard_quiet_hours,
]


def compliance_guard(ctx, actions: list[dict]) -> tuple[list[dict], dict]:
    """Apply every guard to a copy of `actions`; return (guarded actions, report dict).

    Reads only (one query when a WhatsApp template is needed). An escalation is appended
    when a reply had to be replaced, unless one is already proposed.
    """
    guarded = [dict(a) for a in actions]
    report = ComplianceReport()
    for guard in GUARDS:
        guard(ctx, guarded, report)
    if report.escalate_reasons and not any(a["type"] == A.ESCALATE_TO_HUMAN for a in guarded):
        guarded.append(A.escalate_to_human(reason=report.escalate_reasons[0]))
    if not guarded:
        guarded.append(A.no_action(reason="Nothing to do."))
    return guarded, report.as_dict()
