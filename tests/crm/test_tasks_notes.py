import pytest
from django.utils import timezone

from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.crm import services
from apps.crm.models import Contact, Task, TaskStatus
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


def test_task_for_a_deal_links_its_contact(organization, member):
    contact = f.contact(organization)
    deal = f.deal(organization, contact=contact)
    due = timezone.now()
    task = services.task_create(
        organization=organization, title=" Call Maya ", deal=deal, assignee=member, due_at=due
    )
    assert task.title == "Call Maya" and task.contact == contact and task.status == "open"
    data = f.events(organization, "task.created")[0].data
    assert data["deal_id"] == str(deal.pk) and data["assignee_id"] == str(member.pk)
    assert data["contact_id"] == str(contact.pk)


def test_complete_once(organization, member):
    task = services.task_create(organization=organization, title="x")
    done = services.task_complete(organization=organization, task=task, completed_by=member)
    services.task_complete(organization=organization, task=task)
    assert done.status == "done" and done.completed_by == member and done.completed_at
    completed = f.events(organization, "task.completed")
    assert len(completed) == 1 and completed[0].data["changed_by_id"] == str(member.pk)


def test_a_cancelled_task_cannot_be_completed(organization):
    task = services.task_create(organization=organization, title="x")
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.CANCELLED)
    with pytest.raises(Conflict):
        services.task_complete(organization=organization, task=task)


def test_bad_tasks(organization, other_organization, other_member):
    with pytest.raises(ValidationFailed):
        services.task_create(organization=organization, title="  ")
    with pytest.raises(ValidationFailed):
        services.task_create(
            organization=organization, title="x", due_at=timezone.now().replace(tzinfo=None)
        )
    with pytest.raises(NotFound):
        services.task_create(organization=organization, title="x", assignee=other_member)
    with pytest.raises(NotFound):
        services.task_create(
            organization=organization, title="x", contact=f.contact(other_organization)
        )
    assert not Task.objects.filter(organization=organization).exists()


def test_task_update(organization, member):
    task = services.task_create(organization=organization, title="x")
    services.task_update(
        organization=organization, task=task, data={"title": "y", "assignee": member}
    )
    task.refresh_from_db()
    assert task.title == "y" and task.assignee == member


def test_note_create_and_update(organization, member):
    contact = f.contact(organization)
    note = services.note_create(
        organization=organization, contact=contact, body=" Knee injury ", author=member
    )
    assert note.body == "Knee injury" and note.author == member
    assert Contact.objects.get(pk=contact.pk).last_activity_at == note.created_at
    services.note_update(organization=organization, note=note, body="Knee injury (2024)")
    note.refresh_from_db()
    assert note.body == "Knee injury (2024)"
    with pytest.raises(ValidationFailed):
        services.note_create(organization=organization, contact=contact, body="")
    with pytest.raises(ValidationFailed):
        services.note_create(organization=organization, contact=contact, body="x" * 20_001)


def test_companies(organization):
    company = services.company_create(organization=organization, name="Acme", domain="WWW.Acme.com")
    assert company.domain == "acme.com"
    with pytest.raises(Conflict):
        services.company_create(organization=organization, name="Acme 2", domain="acme.com")
    with pytest.raises(ValidationFailed):
        services.company_create(organization=organization, name=" ")
