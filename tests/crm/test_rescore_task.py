"""An inbound message rescores the contact's leads in a worker (keyword rules read messages)."""

import pytest

from apps.crm.models import Lead
from apps.niches.models import QualificationRule
from tests.support.services import wait_for

pytestmark = pytest.mark.worker


def test_inbound_message_rescores_in_a_worker(api, organization, start_worker):
    QualificationRule.objects.create(
        niche=organization.primary_niche,
        key="urgent-test",
        name="Wants to start now",
        kind="keyword",
        condition={"keywords": ["asap"]},
        points=15,
    )
    start_worker(queues="default")
    body = {
        "channel": "api",
        "message_id": "m-1",
        "from": {"external_id": "ext-1", "name": "Kim"},
        "text": "I want to start asap please",
    }
    assert api.post("/api/v1/messages/inbound/", body, format="json").status_code in (200, 201, 202)
    lead = wait_for(
        lambda: Lead.objects.filter(organization=organization, score__gte=15).first(),
        what="the lead to be rescored",
    )
    assert any(r["rule"] == "urgent-test" for r in lead.score_reasons)
