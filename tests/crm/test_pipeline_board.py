"""The pipeline board (/admin/pipeline/) and the move form it posts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.crm import services
from apps.crm.models import DealStageChange, Stage
from tests.crm import factories as f
from tests.factories import staff_user

pytestmark = pytest.mark.django_db
BOARD = "/admin/pipeline/"
MOVE = "/admin/pipeline/move/"


@pytest.fixture
def boards(organization, other_organization, make_staff_client):
    mine = [
        f.deal(
            organization,
            title="mine-deal-1",
            amount=100,
            contact=f.contact(organization, name="Maya"),
        ),
        f.deal(organization, title="mine-deal-2", amount="49.50"),
    ]
    theirs = f.deal(other_organization, title="theirs-deal", amount=999)
    return {
        "mine": mine,
        "theirs": theirs,
        "operator": make_staff_client(organization, role="operator"),
        "user": make_staff_client(organization, role="user"),
    }


def test_board_shows_my_pipeline_with_totals_and_chart(boards, organization):
    response = boards["operator"].get(BOARD)
    assert response.status_code == 200
    body = response.content.decode()
    assert "mine-deal-1" in body and "mine-deal-2" in body and "Maya" in body
    assert "theirs-deal" not in body and "999.00" not in body
    assert "Value per stage" in body
    columns = {c.stage.name: c for c in response.context["board"].columns}
    assert columns["New lead"].count == 2 and str(columns["New lead"].amount) == "149.50"
    assert 'action="/admin/pipeline/move/"' in body
    nav = [p.name for p in response.context["switchboard_pages"]]
    assert "pipeline_board" in nav and "pipeline_move" not in nav


@pytest.mark.parametrize("param", ["organization", "pipeline"])
def test_foreign_or_bad_ids_are_404(boards, other_organization, param):
    foreign = {"organization": other_organization.pk, "pipeline": boards["theirs"].pipeline_id}
    assert boards["operator"].get(BOARD, {param: str(foreign[param])}).status_code == 404
    assert boards["operator"].get(BOARD, {param: "garbage"}).status_code == 404


def test_moving_a_deal_records_who_and_emits(boards, organization):
    deal = boards["mine"][0]
    offer = Stage.objects.get(pipeline=deal.pipeline, name="Offer made")
    client = boards["operator"]
    response = client.post(MOVE, {"deal": str(deal.pk), "stage": str(offer.pk)}, follow=True)
    assert response.redirect_chain[-1][0].startswith(BOARD)
    assert "New lead → Offer made" in response.content.decode()
    deal.refresh_from_db()
    assert deal.stage == offer
    change = DealStageChange.objects.filter(deal=deal).latest("created_at")
    assert change.changed_by == client.user
    assert f.events(organization, "deal.stage_changed")[-1].data["changed_by_id"] == str(
        client.user.pk
    )


def test_moving_to_lost_keeps_the_reason(boards):
    deal = boards["mine"][1]
    lost = Stage.objects.get(pipeline=deal.pipeline, name="Lost")
    boards["operator"].post(
        MOVE, {"deal": str(deal.pk), "stage": str(lost.pk), "lost_reason": "Price"}
    )
    deal.refresh_from_db()
    assert deal.status == "lost" and deal.lost_reason == "Price"


def test_a_foreign_deal_cannot_be_moved(boards):
    theirs = boards["theirs"]
    lost = Stage.objects.get(pipeline=theirs.pipeline, name="Lost")
    response = boards["operator"].post(MOVE, {"deal": str(theirs.pk), "stage": str(lost.pk)})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.stage.name == "New lead"


def test_a_stage_of_another_pipeline_is_refused(boards, organization):
    deal = boards["mine"][0]
    other = services.pipeline_create(
        organization=organization, name="B2B", stages=[{"name": "Pitch"}]
    )
    response = boards["operator"].post(
        MOVE, {"deal": str(deal.pk), "stage": str(other.stages.get().pk)}, follow=True
    )
    assert "Choose a stage of Memberships" in response.content.decode()
    deal.refresh_from_db()
    assert deal.stage.name == "New lead"


def test_read_only_members_see_the_board_but_cannot_move(boards):
    deal = boards["mine"][0]
    response = boards["user"].get(BOARD)
    assert response.status_code == 200 and "mine-deal-1" in response.content.decode()
    assert 'action="/admin/pipeline/move/"' not in response.content.decode()
    won = Stage.objects.get(pipeline=deal.pipeline, name="Member")
    assert (
        boards["user"].post(MOVE, {"deal": str(deal.pk), "stage": str(won.pk)}).status_code == 403
    )
    deal.refresh_from_db()
    assert deal.status == "open"


def test_move_only_accepts_posts(boards):
    assert boards["operator"].get(MOVE).status_code == 405


def test_a_member_of_two_organizations_picks_one(boards, organization, other_organization):
    from apps.tenancy.services import operator_upsert

    user = staff_user(organization, role="operator", email="both@example.com")
    operator_upsert(organization=other_organization, email="both@example.com", role="operator")
    from django.test import Client

    client = Client()
    client.force_login(user)
    mine = client.get(BOARD, {"organization": str(organization.pk)}).content.decode()
    theirs = client.get(BOARD, {"organization": str(other_organization.pk)}).content.decode()
    assert "mine-deal-1" in mine and "theirs-deal" not in mine
    assert "theirs-deal" in theirs and "mine-deal-1" not in theirs


def test_board_query_count_does_not_grow_with_deals(boards, organization):
    client = boards["operator"]

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(BOARD).status_code == 200
        return len(ctx.captured_queries)

    client.get(BOARD)
    few = count()
    for i in range(10):
        f.deal(organization, title=f"more-{i}", amount=i, contact=f.contact(organization))
    assert count() == few
