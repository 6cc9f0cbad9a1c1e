"""Every CRM service emits its events exactly once, inside its transaction."""

import pytest
from django.db import transaction

from apps.crm import models, services
from apps.crm.models import Stage
from apps.events.models import Event
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


def _stage(deal, name):
    return Stage.objects.get(pipeline=deal.pipeline, name=name)


def _qualifying_lead(org):
    f.rule(org, kind="keyword", condition={"keywords": ["ready"]}, points=500)
    contact = f.contact(org)
    lead = f.lead(org, contact=contact)
    f.message(contact, "I'm ready")
    return lead


# name -> (arrange(org) returning the action, the event types it must emit in order)
CASES = {
    "contact_create": (
        lambda org: lambda: services.contact_create(organization=org, email="new@example.com"),
        ["contact.created"],
    ),
    "contact_update": (
        lambda org: (
            lambda c: (
                lambda: services.contact_update(organization=org, contact=c, data={"tags": ["vip"]})
            )
        )(f.contact(org)),
        ["contact.updated"],
    ),
    "contact_set_consent": (
        lambda org: (
            lambda c: (
                lambda: services.contact_set_consent(
                    organization=org, contact=c, channel="sms", opted_in=False, reason="STOP"
                )
            )
        )(f.contact(org)),
        ["contact.opted_out"],
    ),
    "contact_merge": (
        lambda org: (
            lambda a, b: (
                lambda: services.contact_merge(organization=org, survivor=a, duplicates=[b])
            )
        )(f.contact(org), f.contact(org)),
        ["contact.updated"],
    ),
    "lead_create": (
        lambda org: (lambda c: lambda: services.lead_create(organization=org, contact=c))(
            f.contact(org)
        ),
        ["lead.created"],
    ),
    "lead_rescore": (
        lambda org: (lambda lead: lambda: services.lead_rescore(lead=lead))(_qualifying_lead(org)),
        ["lead.qualified"],
    ),
    "lead_qualify": (
        lambda org: (lambda lead: lambda: services.lead_qualify(organization=org, lead=lead))(
            f.lead(org)
        ),
        ["lead.qualified"],
    ),
    "lead_disqualify": (
        lambda org: (
            lambda lead: lambda: services.lead_disqualify(organization=org, lead=lead, reason="x")
        )(f.lead(org)),
        ["lead.disqualified"],
    ),
    "lead_convert": (
        lambda org: (lambda lead: lambda: services.lead_convert(organization=org, lead=lead))(
            f.lead(org)
        ),
        ["deal.created", "contact.updated", "lead.converted"],
    ),
    "deal_create": (
        lambda org: lambda: services.deal_create(organization=org, title="x"),
        ["deal.created"],
    ),
    "deal_move_stage": (
        lambda org: (
            lambda d: (
                lambda: services.deal_move_stage(
                    organization=org, deal=d, stage=_stage(d, "Offer made")
                )
            )
        )(f.deal(org)),
        ["deal.stage_changed"],
    ),
    "deal_move_stage_won": (
        lambda org: (
            lambda d: (
                lambda: services.deal_move_stage(
                    organization=org, deal=d, stage=_stage(d, "Member")
                )
            )
        )(f.deal(org, contact=f.contact(org))),
        ["deal.stage_changed", "contact.updated", "deal.won"],
    ),
    "deal_move_stage_lost": (
        lambda org: (
            lambda d: (
                lambda: services.deal_move_stage(
                    organization=org, deal=d, stage=_stage(d, "Lost"), lost_reason="price"
                )
            )
        )(f.deal(org)),
        ["deal.stage_changed", "deal.lost"],
    ),
    "task_create": (
        lambda org: lambda: services.task_create(organization=org, title="Call back"),
        ["task.created"],
    ),
    "task_complete": (
        lambda org: (lambda t: lambda: services.task_complete(organization=org, task=t))(
            services.task_create(organization=org, title="Call back")
        ),
        ["task.completed"],
    ),
}


def snapshot():
    """Every CRM row and event, as plain values (to prove a rollback left no trace)."""
    tables = [
        models.Contact,
        models.ContactIdentity,
        models.ContactConsent,
        models.Lead,
        models.Deal,
        models.DealStageChange,
        models.Task,
        models.Note,
        models.Pipeline,
        models.Stage,
        Event,
    ]
    return {m.__name__: sorted(map(repr, m.objects.values_list())) for m in tables}


@pytest.mark.parametrize("case", list(CASES))
def test_emits_its_events_exactly_once(organization, case):
    arrange, expected = CASES[case]
    action = arrange(organization)
    before = Event.objects.count()
    action()
    emitted = list(Event.objects.order_by("sequence")[before:])
    assert [e.type for e in emitted] == expected
    assert all(e.organization_id == organization.pk for e in emitted)


@pytest.mark.parametrize("case", list(CASES))
def test_rolls_back_with_its_transaction(organization, case):
    arrange, _ = CASES[case]
    action = arrange(organization)
    before = snapshot()

    class Abort(Exception):
        pass

    def run_then_fail():
        with transaction.atomic():
            action()
            raise Abort

    with pytest.raises(Abort):
        run_then_fail()
    assert snapshot() == before
