"""Contact search (and its indexes), filters, the timeline and the pipeline board."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.crm import selectors, services
from apps.crm.models import Contact, Deal, Stage
from apps.crm.timeline import TimelineEntry, register_timeline_provider, timeline_providers
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(organization, member):
    return {
        "maya": f.contact(
            organization,
            name="Maya Chen",
            email="maya@pulse.example",
            phone="+14155550142",
            tags=["trial"],
            source="instagram",
            owner=member,
        ),
        "jordan": f.contact(
            organization,
            name="Jordan Alvarez",
            email="jordan@example.com",
            phone="+14155550999",
            tags=["member"],
            lifecycle_stage="customer",
        ),
        "lena": f.contact(
            organization, name="Léna Fischer", email="lena@fischer.example", source="walk-in"
        ),
    }


def names(queryset):
    return sorted(c.name for c in queryset)


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("maya", ["Maya Chen"]),
        ("CHEN", ["Maya Chen"]),
        ("fischer.exa", ["Léna Fischer"]),
        ("example.com", ["Jordan Alvarez"]),
        ("(415) 555-01", ["Maya Chen"]),
        ("555", ["Jordan Alvarez", "Maya Chen"]),
        ("+1 415 555 0999", ["Jordan Alvarez"]),
        ("4155550142", ["Maya Chen"]),
        ("nobody", []),
        ("", ["Jordan Alvarez", "Léna Fischer", "Maya Chen"]),
    ],
)
def test_search_by_name_email_or_phone(organization, people, term, expected):
    assert names(selectors.contact_list(organization=organization, search=term)) == expected


def test_search_is_per_organization(organization, other_organization, people):
    f.contact(other_organization, name="Maya Other")
    assert names(selectors.contact_list(organization=organization, search="maya")) == ["Maya Chen"]


def test_filters(organization, people, member):
    def listed(**kwargs):
        return names(selectors.contact_list(organization=organization, **kwargs))

    assert listed(tag="trial") == ["Maya Chen"]
    assert listed(lifecycle_stage="customer") == ["Jordan Alvarez"]
    assert listed(source="walk-in") == ["Léna Fischer"]
    assert listed(owner_id=member.pk) == ["Maya Chen"]
    Contact.objects.filter(pk=people["lena"].pk).update(
        created_at=timezone.now() - timedelta(days=10)
    )
    assert listed(created_before=timezone.now() - timedelta(days=5)) == ["Léna Fischer"]
    assert listed(created_after=timezone.now() - timedelta(days=5)) == [
        "Jordan Alvarez",
        "Maya Chen",
    ]


def _plan(sql, params, *settings) -> str:
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(f"SET LOCAL {setting}")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("lookup", "index"),
    [
        ({"name__icontains": "chen"}, "contact_name_trgm"),
        ({"email__icontains": "pulse.ex"}, "contact_email_trgm"),
        ({"phone__contains": "5550142"}, "contact_phone_trgm"),
    ],
)
def test_each_search_predicate_matches_its_trigram_index(organization, lookup, index):
    sql, params = Contact.objects.filter(**lookup).values("id").query.sql_with_params()
    assert index in _plan(sql, params, "enable_seqscan = off")


def test_timeline_has_every_kind_newest_first(organization, member):
    contact = f.contact(organization, name="Maya")
    lead = f.lead(organization, contact=contact, source="instagram")
    deal = f.deal(organization, contact=contact, title="Membership")
    services.deal_move_stage(
        organization=organization,
        deal=deal,
        stage=Stage.objects.get(pipeline=deal.pipeline, name="Trial booked"),
        changed_by=member,
    )
    task = services.task_create(
        organization=organization, title="Call", contact=contact, due_at=timezone.now()
    )
    services.task_complete(organization=organization, task=task, completed_by=member)
    services.note_create(
        organization=organization, contact=contact, body="Knee injury", author=member
    )
    f.booking(contact)
    services.lead_qualify(organization=organization, lead=lead)
    entries = selectors.contact_timeline(organization=organization, contact=contact)
    kinds = {e.kind for e in entries}
    assert kinds == {"lead", "deal", "stage_change", "task", "note", "booking"}
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    moved = next(e for e in entries if e.kind == "stage_change")
    assert moved.detail.startswith("New lead → Trial booked") and moved.actor == str(member)
    assert moved.url == f"/admin/crm/deal/{deal.pk}/change/"
    assert any(e.title == "Lead qualified" for e in entries)
    assert any(e.title == "Task done: Call" for e in entries)
    assert any(e.title == "Booking: Free trial class" for e in entries)


def test_timeline_is_extensible(organization):
    contact = f.contact(organization)

    def messages(contact_, limit):
        yield TimelineEntry(at=timezone.now() + timedelta(days=1), kind="message", title="Hi!")

    register_timeline_provider(messages)
    try:
        entries = selectors.contact_timeline(organization=organization, contact=contact)
        assert entries[0].kind == "message"
    finally:
        from apps.crm import timeline

        timeline._providers.remove(messages)
    assert messages not in timeline_providers()


def test_timeline_of_a_foreign_contact_is_not_found(organization, other_organization):
    from apps.core.errors import NotFound

    with pytest.raises(NotFound):
        selectors.contact_timeline(organization=organization, contact=f.contact(other_organization))


def _board_world(organization, n_per_stage):
    pipeline = services.pipeline_ensure_default(organization=organization)
    stages = {s.name: s for s in pipeline.stages.all()}
    for i in range(n_per_stage):
        services.deal_create(
            organization=organization, title=f"new {i}", amount=100, stage=stages["New lead"]
        )
        services.deal_create(
            organization=organization,
            title=f"offer {i}",
            amount="50.50",
            stage=stages["Offer made"],
            contact=f.contact(organization),
        )
    services.deal_create(
        organization=organization,
        title="euro",
        amount=70,
        currency="EUR",
        stage=stages["Offer made"],
    )
    services.deal_create(
        organization=organization, title="won", amount=1000, stage=stages["Member"]
    )
    old = services.deal_create(
        organization=organization, title="old lost", amount=5, stage=stages["Lost"]
    )
    Deal.objects.filter(pk=old.pk).update(closed_at=timezone.now() - timedelta(days=90))
    return pipeline, stages


def test_board_totals_per_stage(organization):
    pipeline, _ = _board_world(organization, 3)
    board = selectors.pipeline_board(
        organization=organization, pipeline=pipeline, cards_per_stage=2
    )
    columns = {c.stage.name: c for c in board.columns}
    assert list(columns) == [
        "New lead",
        "Trial booked",
        "Trial attended",
        "Offer made",
        "Member",
        "Lost",
    ]
    assert (columns["New lead"].count, columns["New lead"].amount) == (3, 300)
    assert (columns["Offer made"].count, str(columns["Offer made"].amount)) == (4, "151.50")
    assert columns["Offer made"].other_currencies == {"EUR": 70}
    assert str(columns["Offer made"].weighted) == "106.05"
    assert (columns["Member"].count, columns["Lost"].count) == (1, 0)
    assert len(columns["New lead"].deals) == 2 and columns["New lead"].more == 1
    assert board.open_count == 7 and str(board.open_amount) == "451.50"
    assert board.max_amount == 1000


def test_board_query_count_does_not_grow_with_deals(organization, django_assert_num_queries):
    pipeline, _ = _board_world(organization, 2)
    with django_assert_num_queries(3):
        board = selectors.pipeline_board(organization=organization, pipeline=pipeline)
        [d.contact for c in board.columns for d in c.deals]
    _board_world(organization, 6)
    with django_assert_num_queries(3):
        board = selectors.pipeline_board(organization=organization, pipeline=pipeline)
        [d.contact for c in board.columns for d in c.deals]
