"""The tier enforcer: every plan limit refused at its point of use, through the real
interfaces (CLI, API, services), with an error naming the limit; usage as admins see it."""

import io
import json
import subprocess
import sys
import threading

import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection

from apps.conversations.models import Message
from apps.core.errors import LimitExceeded
from apps.crm.models import Contact
from apps.crm.services import contact_create, contact_upsert
from apps.providers.models import ChannelConnection
from apps.revenue import limits, services
from apps.revenue.models import Plan, SubscriptionChange
from apps.tenancy.models import Membership
from apps.tenancy.services import operator_upsert
from tests.factories import OrganizationFactory
from tests.providers import factories as pf
from tests.revenue import factories as f
from tests.support.workers import ROOT, subprocess_database_url

pytestmark = pytest.mark.django_db


def assert_limit_error(response, limit: str, value: int, usage: int):
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "limit_exceeded"
    assert error["details"]["limit"] == limit
    assert error["details"]["value"] == value and error["details"]["usage"] == usage
    assert error["details"]["plan"] == "free"
    assert "Plan limit reached" in error["message"]
    return error


# --- operators ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_operators_limit_through_the_cli():
    from apps.revenue.plans import plans_ensure_defaults

    plans_ensure_defaults()
    organization = OrganizationFactory(slug="ops")
    Plan.objects.filter(key="free").update(max_operators=1)
    operator_upsert(organization=organization, email="first@example.com", role="admin")

    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": subprocess_database_url(),
    }
    import os

    result = subprocess.run(
        [sys.executable, "manage.py", "create_operator", "--org", "ops",
         "--email", "second@example.com", "--role", "operator"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result
    [line] = result.stderr.strip().splitlines()
    assert "Plan limit reached: operators" in line and "1 of 1" in line
    assert not Membership.objects.filter(user__email="second@example.com").exists()


def test_operators_limit_counts_new_members_only(organization):
    operator_upsert(organization=organization, email="a@example.com", role="admin")
    f.set_limit(organization, "max_operators", 1)
    # changing the role of an existing member is not a new operator
    operator_upsert(organization=organization, email="a@example.com", role="moderator")
    with pytest.raises(LimitExceeded) as error:
        operator_upsert(organization=organization, email="b@example.com", role="operator")
    assert error.value.details == {
        "limit": "operators",
        "value": 1,
        "usage": 1,
        "adding": 1,
        "plan": "free",
        "period": None,
    }


# --- channels ---------------------------------------------------------------------------------


def test_channels_limit_through_the_cli(organization):
    pf.twilio_channel(organization)
    f.set_limit(organization, "max_channels", 1)
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command(
            "create_channel",
            "--org",
            organization.slug,
            "--provider",
            "mailgun",
            "--config",
            json.dumps({"signing_key": "k", "domain": "d.example.com", "api_key": "a",
                        "from_email": "x@d.example.com"}),
            stderr=stderr,
        )  # fmt: skip
    assert exit_.value.code == 2
    assert "Plan limit reached: channels" in stderr.getvalue()
    assert ChannelConnection.objects.filter(organization=organization).count() == 1


# --- contacts ---------------------------------------------------------------------------------


def test_contacts_limit_through_the_api(api, organization):
    f.set_limit(organization, "max_contacts", 2)
    for n in range(2):
        response = api.post("/api/v1/contacts/", {"email": f"c{n}@x.test"}, format="json")
        assert response.status_code == 201
    refused = api.post("/api/v1/contacts/", {"email": "third@x.test"}, format="json")
    assert_limit_error(refused, "contacts", 2, 2)
    assert Contact.objects.filter(organization=organization).count() == 2
    # matching an existing contact creates nothing, so it is not refused
    again = api.post("/api/v1/contacts/", {"email": "c0@x.test", "name": "C"}, format="json")
    assert again.status_code == 200


def test_merged_contacts_do_not_count(organization):
    from apps.crm.services import contact_merge

    a = f.contact(organization)
    b = f.contact(organization)
    f.set_limit(organization, "max_contacts", 2)
    with pytest.raises(LimitExceeded):
        f.contact(organization)
    contact_merge(organization=organization, survivor=a, duplicates=[b])
    f.contact(organization)  # one slot freed by the merge


def test_inbound_senders_are_never_refused(organization):
    """Ingress creates contacts through `contact_upsert`: a message from a new customer is
    never lost to a plan limit (the contact counts towards usage all the same)."""
    f.set_limit(organization, "max_contacts", 0)
    contact_upsert(organization=organization, phone="+14155550111")
    assert limits.usage_summary(organization=organization)[2].usage == 1


@pytest.mark.django_db(transaction=True)
def test_contacts_limit_is_exact_under_concurrency():
    from apps.revenue.plans import plans_ensure_defaults

    plans_ensure_defaults()
    organization = OrganizationFactory(slug="race")
    Plan.objects.filter(key="free").update(max_contacts=5)
    results, barrier = [], threading.Barrier(12)

    def create(n):
        try:
            barrier.wait(timeout=10)
            contact_create(organization=organization, email=f"racer{n}@x.test")
            results.append("ok")
        except LimitExceeded:
            results.append("refused")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["ok"] * 5 + ["refused"] * 7
    assert Contact.objects.filter(organization=organization).count() == 5


# --- outbound messages per day ------------------------------------------------------------------


@pytest.fixture
def writer(client, organization):
    channel = pf.twilio_channel(organization)
    body = pf.twilio_form(MessageSid="SM1", From="+14133881111", To="+12028831111", Body="Hi")
    assert pf.post_twilio(client, channel, body).status_code == 200
    return Contact.objects.get(organization=organization)


def test_outbound_messages_per_day_through_the_api(
    api, organization, writer, django_capture_on_commit_callbacks
):
    f.set_limit(organization, "max_outbound_messages_per_day", 2)
    for n in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                "/api/v1/messages/", {"contact_id": str(writer.id), "text": f"#{n}"}, format="json"
            )
        assert response.status_code == 202, response.content
    with django_capture_on_commit_callbacks(execute=True):
        refused = api.post(
            "/api/v1/messages/", {"contact_id": str(writer.id), "text": "#3"}, format="json"
        )
    error = assert_limit_error(refused, "outbound_messages_per_day", 2, 2)
    assert error["details"]["period"] == limits.period_bounds(organization, "day")[0]
    assert Message.objects.filter(direction="out").count() == 2
    usage = {row.limit: row for row in limits.usage_summary(organization=organization)}
    assert usage["outbound_messages_per_day"].usage == 2
    assert usage["outbound_messages_per_day"].exceeded


def test_help_replies_are_counted_but_never_refused(
    client, organization, writer, django_capture_on_commit_callbacks
):
    f.set_limit(organization, "max_outbound_messages_per_day", 0)
    channel = ChannelConnection.objects.get(organization=organization)
    body = pf.twilio_form(MessageSid="SM2", From="+14133881111", To="+12028831111", Body="HELP")
    with django_capture_on_commit_callbacks(execute=True):
        assert pf.post_twilio(client, channel, body).status_code == 200
    reply = Message.objects.get(direction="out")
    assert reply.sender_kind == "system"
    usage = {row.limit: row.usage for row in limits.usage_summary(organization=organization)}
    assert usage["outbound_messages_per_day"] == 1


def test_a_rolled_back_send_is_not_counted(organization, writer):
    from django.db import transaction

    from apps.conversations.services import message_send

    def send_then_fail():
        with transaction.atomic():
            message_send(organization=organization, contact=writer, text="Hi", channel="sms")
            raise RuntimeError("the caller failed after the send")

    with pytest.raises(RuntimeError):
        send_then_fail()
    usage = {row.limit: row.usage for row in limits.usage_summary(organization=organization)}
    assert usage["outbound_messages_per_day"] == 0


def test_a_lost_counter_is_seeded_from_the_database(organization, writer):
    from apps.conversations.services import message_send

    for _ in range(3):
        message_send(organization=organization, contact=writer, text="Hi", channel="sms")
    label = limits.period_bounds(organization, "day")[0]
    limits._redis().delete(limits._counter_key(organization, "outbound_messages_per_day", label))
    usage = {row.limit: row.usage for row in limits.usage_summary(organization=organization)}
    assert usage["outbound_messages_per_day"] == 3


def test_redis_down_lets_sends_through(settings, private_redis, organization, writer):
    from apps.conversations.services import message_send

    f.set_limit(organization, "max_outbound_messages_per_day", 0)
    settings.REDIS_URL = private_redis.url
    limits.usage_redis_reset()
    try:
        private_redis.stop()
        message = message_send(
            organization=organization, contact=writer, text="Hi", channel="sms",
            sender_kind="agent",
        )  # fmt: skip
        assert message.pk
    finally:
        limits.usage_redis_reset()


# --- decisions per month (the decisions app calls it at decision creation) ----------------------


def test_decisions_per_month_limit(organization, django_capture_on_commit_callbacks):
    f.set_limit(organization, "max_decisions_per_month", 2)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            limits.limit_check(organization=organization, limit="decisions_per_month")
    with pytest.raises(LimitExceeded) as error:
        limits.limit_check(organization=organization, limit="decisions_per_month")
    assert error.value.details["limit"] == "decisions_per_month"
    assert error.value.details["period"] == limits.period_bounds(organization, "month")[0]
    assert "this month" in error.value.message


def test_unknown_limit_is_a_programming_error(organization):
    with pytest.raises(ValueError, match="unknown limit"):
        limits.limit_check(organization=organization, limit="widgets")


# --- plans, subscription, usage ---------------------------------------------------------------------


def test_unlimited_plans_count_nothing(organization, django_assert_num_queries):
    services.subscription_change_plan(organization=organization, plan_key="scale")
    limits.plan_for(organization)  # cached
    with django_assert_num_queries(0):
        limits.limit_check(organization=organization, limit="channels")
        limits.limit_check(organization=organization, limit="operators")


def test_a_total_limit_check_is_one_bounded_count(organization, django_assert_num_queries):
    limits.plan_for(organization)
    with django_assert_num_queries(1) as captured:
        limits.limit_check(organization=organization, limit="contacts")
    assert "LIMIT 1000" in captured.captured_queries[0]["sql"]


def test_changing_the_plan_changes_the_limits(organization):
    f.set_limit(organization, "max_contacts", 1)
    f.contact(organization)
    with pytest.raises(LimitExceeded):
        f.contact(organization)
    subscription = services.subscription_change_plan(
        organization=organization, plan_key="starter", reason="upgrade"
    )
    organization.refresh_from_db()
    assert organization.plan == "starter" and subscription.status == "active"
    f.contact(organization)
    change = SubscriptionChange.objects.get()
    assert (change.from_plan, change.to_plan, change.reason) == ("free", "starter", "upgrade")
    services.subscription_change_plan(organization=organization, plan_key="starter")
    assert SubscriptionChange.objects.count() == 1  # idempotent
    with pytest.raises(Exception, match="plan"):
        services.subscription_change_plan(organization=organization, plan_key="platinum")


def test_usage_api(api, organization):
    f.contact(organization)
    response = api.get("/api/v1/usage/")
    assert response.status_code == 200
    body = response.json()
    assert body["plan"]["key"] == "free" and body["plan"]["price"] == "0.00"
    rows = {row["limit"]: row for row in body["limits"]}
    assert set(rows) == set(limits.LIMITS)
    assert rows["contacts"]["usage"] == 1 and rows["contacts"]["value"] == 1000
    assert rows["contacts"]["remaining"] == 999 and rows["contacts"]["exceeded"] is False
    assert rows["outbound_messages_per_day"]["period"] == "day"
    assert (
        rows["decisions_per_month"]["period_label"]
        == limits.period_bounds(organization, "month")[0]
    )


def test_usage_api_is_scoped(api, other_api, organization, other_organization):
    for _ in range(3):
        f.contact(organization)
    rows = {row["limit"]: row for row in other_api.get("/api/v1/usage/").json()["limits"]}
    assert rows["contacts"]["usage"] == 0
