"""Outcomes: replies, bookings and won deals linked back to the decision before them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.crm.models import Stage
from apps.crm.services import deal_move_stage
from apps.decisions.models import Decision, DecisionOutcome
from apps.decisions.selectors import decision_outcome_stats
from apps.decisions.services import decision_outcome_record, decision_outcomes_link
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


def _decision_at(org, who, at, **kwargs):
    decision = f.decide(org, who, **kwargs)
    Decision.objects.filter(pk=decision.pk).update(created_at=at)
    decision.refresh_from_db()
    return decision


def test_replies_bookings_and_won_deals_are_linked_to_the_last_decision(fitness, ana):
    now = timezone.now()
    old = _decision_at(fitness, ana, now - timedelta(hours=3), message="hi")
    last = _decision_at(fitness, ana, now - timedelta(hours=1), message="can I book?")
    reply = f.message(ana, "the first one", at=now - timedelta(minutes=30))
    early = f.message(ana, "hello", at=now - timedelta(hours=5))  # before any decision
    booking = f.booking(fitness, ana, now=now)
    deal = f.deal(fitness, ana)
    won = Stage.objects.get(pipeline=deal.pipeline, is_won=True)
    deal_move_stage(organization=fitness, deal=deal, stage=won)

    assert (
        decision_outcomes_link(since=now - timedelta(hours=6), now=now + timedelta(minutes=1)) == 3
    )
    outcomes = {o.kind: o for o in DecisionOutcome.objects.all()}
    assert set(outcomes) == {"reply_received", "booking_made", "deal_won"}
    assert outcomes["reply_received"].decision_id == last.pk
    assert outcomes["reply_received"].subject_id == str(reply.pk)
    assert outcomes["booking_made"].subject_id == str(booking.pk)
    assert outcomes["deal_won"].subject_id == str(deal.pk)
    assert not DecisionOutcome.objects.filter(subject_id=str(early.pk)).exists()
    assert not DecisionOutcome.objects.filter(decision=old).exists()
    # overlapping runs link nothing twice
    assert (
        decision_outcomes_link(since=now - timedelta(hours=6), now=now + timedelta(minutes=1)) == 0
    )

    stats = decision_outcome_stats(organization=fitness, since=now - timedelta(days=1))
    assert stats["decisions"] == 2
    assert (stats["reply_received"], stats["booking_made"], stats["deal_won"]) == (1, 1, 1)
    assert stats["by_engine"] == {"rules": 2}


def test_outcomes_older_than_the_lookback_are_not_linked(fitness, ana):
    now = timezone.now()
    _decision_at(fitness, ana, now - timedelta(days=9), message="hi")
    f.message(ana, "hello again", at=now - timedelta(hours=1))
    assert decision_outcomes_link(since=now - timedelta(hours=2), now=now) == 0


def test_other_organizations_decisions_are_never_linked(fitness, ana):
    now = timezone.now()
    other = f.organization("real_estate")
    theirs = f.contact(other)
    _decision_at(other, theirs, now - timedelta(hours=1), message="hi")
    f.message(ana, "hi", at=now - timedelta(minutes=5))
    assert decision_outcomes_link(since=now - timedelta(hours=2), now=now) == 0


def test_record_is_idempotent(fitness, ana):
    decision = f.decide(fitness, ana, message="hi")
    at = timezone.now()
    first = decision_outcome_record(
        decision=decision,
        kind="booking_made",
        subject_type="booking",
        subject_id="b-1",
        occurred_at=at,
    )
    again = decision_outcome_record(
        decision=decision,
        kind="booking_made",
        subject_type="booking",
        subject_id="b-1",
        occurred_at=at,
    )
    assert first is not None and again is None
    assert DecisionOutcome.objects.count() == 1
    with pytest.raises(ValueError, match="unknown outcome kind"):
        decision_outcome_record(
            decision=decision, kind="party", subject_type="x", subject_id="1", occurred_at=at
        )
