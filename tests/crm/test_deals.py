"""Default pipelines, deals, stage history, won/lost, lead qualify/disqualify/convert."""

import threading

import pytest
from django.db import connection, transaction

from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.crm import services
from apps.crm.models import Deal, DealStageChange, Pipeline, Stage
from apps.crm.pipelines import DEFAULT_PIPELINES
from tests.crm import factories as f
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def stage(pipeline, name):
    return Stage.objects.get(pipeline=pipeline, name=name)


@pytest.mark.parametrize("niche", list(DEFAULT_PIPELINES))
def test_each_niche_gets_its_default_pipeline_once(niche):
    organization = OrganizationFactory(niche=niche)
    pipeline = services.pipeline_ensure_default(organization=organization)
    again = services.pipeline_ensure_default(organization=organization)
    assert pipeline.pk == again.pk and pipeline.is_default
    template = DEFAULT_PIPELINES[niche]
    stages = list(pipeline.stages.order_by("order"))
    assert [s.name for s in stages] == [s.name for s in template.stages]
    assert [s.order for s in stages] == list(range(1, len(stages) + 1))
    assert sum(s.is_won for s in stages) == 1 and sum(s.is_lost for s in stages) == 1
    assert stages[0].probability < stages[-3].probability
    assert all(s.max_idle_days for s in stages if not (s.is_won or s.is_lost))


def test_fitness_pipeline(organization):
    pipeline = services.pipeline_ensure_default(organization=organization)
    assert pipeline.name == "Memberships"
    assert list(pipeline.stages.order_by("order").values_list("name", "is_won", "is_lost")) == [
        ("New lead", False, False),
        ("Trial booked", False, False),
        ("Trial attended", False, False),
        ("Offer made", False, False),
        ("Member", True, False),
        ("Lost", False, True),
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_deals_share_one_default_pipeline():
    organization = OrganizationFactory()
    barrier, errors = threading.Barrier(5), []

    def create():
        try:
            barrier.wait()
            with transaction.atomic():
                services.deal_create(organization=organization, title="Concurrent")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Pipeline.objects.filter(organization=organization).count() == 1
    assert Deal.objects.filter(organization=organization).count() == 5


def test_deal_create_defaults_and_history(organization, member):
    contact = f.contact(organization, name="Maya")
    deal = services.deal_create(
        organization=organization, contact=contact, amount="149.5", changed_by=member
    )
    assert deal.title == "Maya — new deal"
    assert deal.pipeline.is_default and deal.stage.name == "New lead" and deal.status == "open"
    assert str(deal.amount) == "149.50" and deal.currency == "USD"
    change = DealStageChange.objects.get(deal=deal)
    assert change.from_stage is None and change.to_stage == deal.stage
    assert change.changed_by == member
    created = f.events(organization, "deal.created")
    assert len(created) == 1
    assert created[0].data["stage"] == "New lead" and created[0].data["amount"] == "149.50"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x", "amount": "-1"}, "amount"),
        ({"title": "x", "amount": "abc"}, "amount"),
        ({"title": "x", "currency": "dollars"}, "currency"),
    ],
)
def test_bad_deals_write_nothing(organization, kwargs, field):
    with pytest.raises(ValidationFailed) as caught:
        services.deal_create(organization=organization, **kwargs)
    assert field in caught.value.details
    assert not Deal.objects.exists() and not f.events(organization, "deal.created")


def test_a_stage_of_another_pipeline_is_refused(organization):
    default = services.pipeline_ensure_default(organization=organization)
    other = services.pipeline_create(
        organization=organization,
        name="Corporate",
        stages=[{"name": "Pitch"}, {"name": "Signed", "is_won": True}],
    )
    with pytest.raises(ValidationFailed):
        services.deal_create(
            organization=organization, title="x", pipeline=default, stage=stage(other, "Pitch")
        )
    deal = services.deal_create(organization=organization, title="x", stage=stage(other, "Pitch"))
    assert deal.pipeline == other
    with pytest.raises(ValidationFailed):
        services.deal_move_stage(
            organization=organization, deal=deal, stage=stage(default, "Member")
        )


def test_foreign_objects_are_not_found(organization, other_organization, other_member):
    foreign_contact = f.contact(other_organization)
    with pytest.raises(NotFound):
        services.deal_create(organization=organization, title="x", contact=foreign_contact)
    with pytest.raises(NotFound):
        services.deal_create(organization=organization, title="x", owner=other_member)
    foreign_pipeline = services.pipeline_ensure_default(organization=other_organization)
    deal = services.deal_create(organization=organization, title="x")
    with pytest.raises(NotFound):
        services.deal_move_stage(
            organization=organization, deal=deal, stage=foreign_pipeline.stages.first()
        )


def test_moving_records_history_and_events(organization, member):
    contact = f.contact(organization)
    deal = services.deal_create(organization=organization, contact=contact, title="Membership")
    pipeline = deal.pipeline
    before = len(f.events(organization))
    moved = services.deal_move_stage(
        organization=organization,
        deal=deal,
        stage=stage(pipeline, "Trial booked"),
        changed_by=member,
    )
    assert moved.stage.name == "Trial booked" and moved.status == "open" and moved.closed_at is None
    new = f.events(organization)[before:]
    assert [e.type for e in new] == ["deal.stage_changed"]
    assert new[0].data["from_stage"] == "New lead" and new[0].data["stage"] == "Trial booked"
    assert new[0].data["changed_by_id"] == str(member.pk)
    history = list(
        deal.stage_changes.order_by("created_at").values_list(
            "from_stage__name", "to_stage__name", "changed_by"
        )
    )
    assert history == [(None, "New lead", None), ("New lead", "Trial booked", member.pk)]


def test_same_stage_is_a_no_op(organization):
    deal = services.deal_create(organization=organization, title="x")
    before = len(f.events(organization))
    services.deal_move_stage(organization=organization, deal=deal, stage=deal.stage)
    assert len(f.events(organization)) == before
    assert deal.stage_changes.count() == 1


def test_won_closes_the_deal_and_makes_a_customer(organization):
    contact = f.contact(organization)
    deal = services.deal_create(organization=organization, contact=contact, title="x", amount=100)
    before = len(f.events(organization))
    won = services.deal_move_stage(
        organization=organization,
        deal=deal,
        stage=stage(deal.pipeline, "Member"),
        actor="api key n8n",
    )
    assert won.status == "won" and won.closed_at is not None
    assert [e.type for e in f.events(organization)[before:]] == [
        "deal.stage_changed",
        "contact.updated",
        "deal.won",
    ]
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "customer"
    assert deal.stage_changes.last().actor == "api key n8n"


def test_lost_with_a_reason_then_reopened(organization):
    deal = services.deal_create(organization=organization, title="x")
    lost = services.deal_move_stage(
        organization=organization,
        deal=deal,
        stage=stage(deal.pipeline, "Lost"),
        lost_reason="Moved away",
    )
    assert lost.status == "lost" and lost.lost_reason == "Moved away" and lost.closed_at
    assert f.events(organization, "deal.lost")[0].data["lost_reason"] == "Moved away"
    reopened = services.deal_move_stage(
        organization=organization, deal=deal, stage=stage(deal.pipeline, "Offer made")
    )
    assert reopened.status == "open" and reopened.closed_at is None and reopened.lost_reason == ""


def test_deal_update_changes_details_without_events(organization):
    deal = services.deal_create(organization=organization, title="x")
    before = len(f.events(organization))
    services.deal_update(organization=organization, deal=deal, data={"title": "y", "amount": "10"})
    deal.refresh_from_db()
    assert deal.title == "y" and str(deal.amount) == "10.00"
    assert len(f.events(organization)) == before
    with pytest.raises(ValidationFailed):
        services.deal_update(organization=organization, deal=deal, data={"stage": None})


def test_qualify_and_disqualify_by_hand(organization, member):
    lead = f.lead(organization)
    services.lead_qualify(
        organization=organization, lead=lead, changed_by=member, reason="budget ok"
    )
    services.lead_qualify(organization=organization, lead=lead)
    assert len(f.events(organization, "lead.qualified")) == 1
    with pytest.raises(ValidationFailed):
        services.lead_disqualify(organization=organization, lead=lead, reason=" ")
    lead = services.lead_disqualify(organization=organization, lead=lead, reason="Outside area")
    assert lead.status == "disqualified" and lead.disqualified_reason == "Outside area"
    assert f.events(organization, "lead.disqualified")[0].data["reason"] == "Outside area"


def test_convert_makes_a_deal_and_an_opportunity(organization):
    contact = f.contact(organization)
    lead = f.lead(organization, contact=contact, source="referral")
    before = len(f.events(organization))
    result = services.lead_convert(
        organization=organization, lead=lead, amount="300", title="Annual"
    )
    assert result.lead.status == "converted" and result.lead.deal == result.deal
    assert result.deal.contact == contact and result.deal.lead_id == lead.pk
    assert result.deal.source == "referral" and result.deal.title == "Annual"
    assert [e.type for e in f.events(organization)[before:]] == [
        "deal.created",
        "contact.updated",
        "lead.converted",
    ]
    assert f.events(organization, "lead.converted")[0].data["deal_id"] == str(result.deal.pk)
    contact.refresh_from_db()
    assert contact.lifecycle_stage == "opportunity"
    for action in (
        lambda: services.lead_convert(organization=organization, lead=lead),
        lambda: services.lead_qualify(organization=organization, lead=lead),
        lambda: services.lead_disqualify(organization=organization, lead=lead, reason="x"),
    ):
        with pytest.raises(Conflict):
            action()


def test_stage_save_validates(organization):
    pipeline = services.pipeline_ensure_default(organization=organization)
    for data, field in (
        ({"name": "New lead"}, "name"),
        ({"name": "X", "order": 1}, "order"),
        ({"name": "X", "probability": 101}, "probability"),
        ({"name": "X", "is_won": True, "is_lost": True}, "is_lost"),
        ({"name": " "}, "name"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            services.stage_save(organization=organization, pipeline=pipeline, data=data)
        assert field in caught.value.details
    added = services.stage_save(
        organization=organization, pipeline=pipeline, data={"name": "Paused"}
    )
    assert added.order == 7


def test_stage_delete_refuses_used_stages(organization):
    deal = services.deal_create(organization=organization, title="x")
    with pytest.raises(Conflict):
        services.stage_delete(organization=organization, stage=deal.stage)
    spare = services.stage_save(
        organization=organization, pipeline=deal.pipeline, data={"name": "Spare"}
    )
    services.stage_delete(organization=organization, stage=spare)
    assert not Stage.objects.filter(pk=spare.pk).exists()


def test_set_default_pipeline(organization):
    first = services.pipeline_ensure_default(organization=organization)
    second = services.pipeline_create(organization=organization, name="Corporate")
    services.pipeline_set_default(organization=organization, pipeline=second)
    first.refresh_from_db()
    assert not first.is_default and Pipeline.objects.get(pk=second.pk).is_default
    assert services.pipeline_ensure_default(organization=organization).pk == second.pk
