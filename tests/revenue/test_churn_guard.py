"""Churn guard: stale deals and customers' churn signals → a task for the owner and an event,
once per episode; selection rules, idempotency and stop conditions."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from apps.crm import services as crm
from apps.crm.models import Contact, Deal, LifecycleStage, Task
from apps.events.models import Event
from apps.revenue import jobs
from apps.revenue.models import ChurnAlert, ChurnSignal, JobRun, RevenueSettings
from tests.factories import staff_user
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db


def stale_types(organization):
    return list(
        Event.objects.filter(
            organization=organization, type__in=["deal.stale", "contact.churn_risk"]
        )
        .order_by("sequence")
        .values_list("type", "data")
    )


@pytest.fixture
def owner(organization):
    return staff_user(organization, role="operator")


def idle_deal(organization, owner, *, days, stage="New lead", **kwargs):
    contact = f.contact(organization)
    deal = f.deal(
        organization, contact=contact, owner=owner, stage=f.stage(organization, stage), **kwargs
    )
    past = timezone.now() - timedelta(days=days)
    f.age(Deal, deal.pk, stage_changed_at=past, last_activity_at=past, created_at=past)
    f.age(Contact, contact.pk, last_activity_at=past)
    return deal


def test_a_stale_deal_gets_one_task_for_its_owner_and_an_event(organization, owner):
    deal = idle_deal(organization, owner, days=5, amount="149.00")  # New lead: 2 days max
    run = jobs.churn_guard_run()
    assert (run.processed, run.created, run.errors) == (1, 1, 0)
    task = Task.objects.get(source="churn_guard")
    assert task.deal_id == deal.pk and task.assignee_id == owner.pk
    assert "5 days in New lead" in task.title
    [(type_, data)] = stale_types(organization)
    assert type_ == "deal.stale"
    assert data["deal_id"] == str(deal.pk) and data["idle_days"] == 5
    assert data["max_idle_days"] == 2 and data["task_id"] == str(task.pk)
    assert data["owner_id"] == str(owner.pk)
    log = JobRun.objects.get(job="churn_guard")
    assert log.status == "succeeded" and log.finished_at and log.created == 1

    again = jobs.churn_guard_run()
    assert again.created == 0 and again.processed == 0  # handled episodes are not selected
    assert Task.objects.filter(source="churn_guard").count() == 1
    assert len(stale_types(organization)) == 1


def test_stale_deal_selection_rules(organization, owner):
    idle_deal(organization, owner, days=1)  # within New lead's 2 days
    idle_deal(organization, owner, days=6, stage="Trial booked")  # within 7 days
    idle_deal(organization, owner, days=30, stage="Member")  # won: no limit, closed
    idle_deal(organization, owner, days=30, stage="Lost")
    busy = idle_deal(organization, owner, days=10)
    f.age(Contact, busy.contact_id, last_activity_at=timezone.now())  # the customer wrote
    assert jobs.churn_guard_run().created == 0


def test_activity_ends_the_episode_and_a_new_idle_period_is_a_new_one(organization, owner):
    deal = idle_deal(organization, owner, days=25)
    jobs.churn_guard_run()
    alert = ChurnAlert.objects.get(deal=deal)
    f.age(ChurnAlert, alert.pk, created_at=timezone.now() - timedelta(days=20))
    crm.deal_move_stage(
        organization=organization, deal=deal, stage=f.stage(organization, "Trial booked")
    )
    assert jobs.churn_guard_run().created == 0  # moved: not stale any more
    past = timezone.now() - timedelta(days=9)  # ... and idle since, after the first alert
    f.age(Deal, deal.pk, stage_changed_at=past, last_activity_at=past)
    f.age(Contact, deal.contact_id, last_activity_at=past)
    assert jobs.churn_guard_run().created == 1  # stale again in the new stage
    assert ChurnAlert.objects.filter(deal=deal).count() == 2


def test_a_former_member_owner_falls_back_to_unassigned(organization, owner):
    from apps.tenancy.models import Membership

    idle_deal(organization, owner, days=5)
    Membership.objects.filter(user=owner).delete()
    jobs.churn_guard_run()
    assert Task.objects.get(source="churn_guard").assignee_id is None


def customer(organization, owner, *, silent_days=0):
    contact = f.contact(organization, owner=owner, lifecycle_stage=LifecycleStage.CUSTOMER)
    f.age(Contact, contact.pk, last_activity_at=timezone.now() - timedelta(days=silent_days))
    return contact


def test_customer_churn_signals(organization, owner):
    silent = customer(organization, owner, silent_days=75)
    missing = customer(organization, owner)
    for days in (3, 10):
        f.booking(missing, status="no_show", no_show_at=timezone.now() - timedelta(days=days))
    one_miss = customer(organization, owner)
    f.booking(one_miss, status="cancelled", cancelled_at=timezone.now())
    old_misses = customer(organization, owner)
    for days in (40, 50):
        f.booking(old_misses, status="no_show", no_show_at=timezone.now() - timedelta(days=days))
    debtor = customer(organization, owner)
    invoice = f.sent_invoice(
        organization, contact=debtor, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 2)
    )
    jobs.invoices_overdue_run()
    leaving = customer(organization, owner)
    f.inbound(leaving, "Hi, I want to cancel my membership please")
    happy = customer(organization, owner)
    f.inbound(happy, "Can I move my class? Don't want to cancel it")
    lead = f.contact(organization)  # not a customer
    f.age(Contact, lead.pk, last_activity_at=timezone.now() - timedelta(days=200))

    run = jobs.churn_guard_run()
    found = {(data["contact_id"], data["signal"]) for _, data in stale_types(organization)}
    assert found == {
        (str(silent.pk), ChurnSignal.CUSTOMER_SILENT),
        (str(missing.pk), ChurnSignal.MISSED_BOOKINGS),
        (str(debtor.pk), ChurnSignal.OVERDUE_INVOICE),
        (str(leaving.pk), ChurnSignal.CANCEL_INTENT),
    }
    assert run.created == 4 and run.details[ChurnSignal.OVERDUE_INVOICE] == 1
    tasks = Task.objects.filter(source="churn_guard")
    assert {t.contact_id for t in tasks} == {silent.pk, missing.pk, debtor.pk, leaving.pk}
    assert all(t.assignee_id == owner.pk for t in tasks)
    overdue_event = next(
        d for _, d in stale_types(organization) if d["signal"] == "overdue_invoice"
    )
    assert overdue_event["invoice_id"] == str(invoice.pk)

    assert jobs.churn_guard_run().created == 0  # idempotent
    assert Task.objects.filter(source="churn_guard").count() == 4


def test_a_silent_customer_who_comes_back_and_goes_silent_again_is_a_new_episode(
    organization, owner
):
    silent = customer(organization, owner, silent_days=140)
    jobs.churn_guard_run()
    assert jobs.churn_guard_run().created == 0
    alert = ChurnAlert.objects.get(contact=silent)
    f.age(ChurnAlert, alert.pk, created_at=timezone.now() - timedelta(days=75))
    f.age(Contact, silent.pk, last_activity_at=timezone.now() - timedelta(days=61))
    assert jobs.churn_guard_run().created == 1


def test_disabled_organizations_are_skipped(organization, owner):
    idle_deal(organization, owner, days=5)
    jobs.churn_guard_run()  # creates the settings row
    RevenueSettings.objects.filter(organization=organization).update(churn_guard_enabled=False)
    idle_deal(organization, owner, days=9)
    assert jobs.churn_guard_run().processed == 0


def test_a_failing_item_is_logged_rolled_back_and_the_run_goes_on(organization):
    with jobs.job_run("example") as run:
        for n in range(3):
            run.processed += 1
            with run.item(f"item {n}"):
                f.contact(organization, email=f"item{n}@x.test")
                if n == 1:
                    raise ValueError("boom")
                run.created += 1
    log = JobRun.objects.get(job="example")
    assert (log.processed, log.created, log.errors) == (3, 2, 1)
    assert log.status == "succeeded" and log.error_messages == ["item 1: ValueError: boom"]
    assert not Contact.objects.filter(email="item1@x.test").exists()  # its work rolled back
    assert Contact.objects.filter(email__startswith="item").count() == 2


def test_a_crashing_run_is_logged_as_failed():
    def crash():
        with jobs.job_run("example") as run:
            run.processed = 1
            raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        crash()
    log = JobRun.objects.get(job="example")
    assert log.status == "failed" and log.finished_at and log.errors == 1
    assert "database went away" in log.error_messages[0]


def test_overlapping_runs_are_skipped():
    from django.db import connection

    key = jobs._lock_key("churn_guard")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        import threading

        result = {}

        def other_run():
            from django.db import connection as other

            result["run"] = jobs.churn_guard_run()
            other.close()

        thread = threading.Thread(target=other_run)
        thread.start()
        thread.join(timeout=30)
        assert result["run"] is None
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
