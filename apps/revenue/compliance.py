"""Compliance for messages the business initiates (sequences, re-engagement), per the niche
rule semantics of docs/niches.md:

- `quiet_hours`: inside the window (contact's time zone, else the organization's; a window
  crossing midnight wraps) the send waits until the window's end (`block`), or goes out and
  is recorded (`warn`). These sends are never replies, so the reply window does not apply.
- `consent_required`: on the rule's channels the contact needs an explicit opt-in on that
  channel, or a message from them on it within `reply_window_hours`.
- an opt-out always blocks (`message_send` refuses it too).

The WhatsApp 24-hour window is `message_send`'s: outside it the approved template for the
step's purpose is used, or the send is refused. The quiet-window computation is the decision
engine's (`apps.decisions.guard.quiet_until`), so both hold messages the same way.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from apps.decisions.guard import quiet_until
from apps.niches.selectors import niche_context


def contact_tz(contact, organization) -> zoneinfo.ZoneInfo:
    if contact.timezone:
        try:
            return zoneinfo.ZoneInfo(contact.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return organization.tz


def _hhmm(value) -> time | None:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class SendWindow:
    allowed_at: datetime  # now, or the end of the quiet window
    held_by: str = ""  # the quiet-hours rule key when held
    warned_by: str = ""  # a warn-only quiet-hours rule the send breaks


def next_allowed_send(*, organization, contact, channel: str, at: datetime) -> SendWindow:
    """When a business-initiated message on `channel` may go out, from `at` (aware).

    Applies every active `quiet_hours` rule for the channel (several rules: the latest end
    wins, re-checked so back-to-back windows chain). Reads the cached niche context.
    """
    rules = niche_context(organization=organization).compliance_rules_of("quiet_hours", channel)
    tz = contact_tz(contact, organization)
    allowed, held_by, warned_by = at, "", ""
    for _ in range(4):  # chained windows settle in a couple of rounds
        moved = False
        for rule in rules:
            start, end = _hhmm(rule.config.get("start")), _hhmm(rule.config.get("end"))
            if start is None or end is None or start == end:
                continue
            until = quiet_until(allowed.astimezone(tz), start, end)
            if until is None:
                continue
            if rule.severity == "warn":
                warned_by = warned_by or rule.key
                continue
            allowed, held_by, moved = until.astimezone(at.tzinfo), rule.key, True
        if not moved:
            break
    return SendWindow(allowed, held_by, warned_by)


def consent_missing(*, organization, contact, channel: str, conversation=None, at: datetime):
    """The `consent_required` rule key that blocks a business-initiated send, else "".

    Needs an explicit opt-in on the channel, or the contact's last inbound message on that
    channel within the rule's `reply_window_hours`.
    """
    from apps.crm.models import ConsentStatus, ContactConsent

    for rule in niche_context(organization=organization).compliance_rules_of("consent_required"):
        config = rule.config or {}
        channels = set(config.get("channels") or rule.channels or [])
        if channels and channel not in channels:
            continue
        if rule.severity == "warn":
            continue
        opted_in = ContactConsent.objects.filter(
            contact=contact, channel=channel, status=ConsentStatus.OPTED_IN
        ).exists()
        if opted_in:
            continue
        window = timedelta(hours=float(config.get("reply_window_hours") or 0))
        last_inbound = None
        if conversation is not None and conversation.last_inbound_channel == channel:
            last_inbound = conversation.last_inbound_at
        if last_inbound is not None and at - last_inbound <= window:
            continue
        return rule.key
    return ""
