import threading
import uuid

import pytest
from django.db import connection, transaction

from apps.events.catalog import InvalidEventData, UnknownEventType
from apps.events.models import Event
from apps.events.services import emit
from tests.factories import OrganizationFactory


def _emit(organization, type="contact.created", **data):
    contact_id = str(uuid.uuid4())
    return emit(
        organization=organization,
        type=type,
        subject_type="contact",
        subject_id=contact_id,
        data={"contact_id": contact_id, **data},
    )


@pytest.mark.django_db
def test_sequences_count_up_per_organization(organization, other_organization):
    with transaction.atomic():
        a = [_emit(organization).sequence for _ in range(3)]
        b = [_emit(other_organization).sequence for _ in range(2)]
    assert a == [1, 2, 3]
    assert b == [1, 2]


@pytest.mark.django_db
def test_rolled_back_with_its_transaction(organization):
    with transaction.atomic():
        _emit(organization)

    def failing_change():
        with transaction.atomic():
            _emit(organization)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    assert list(Event.objects.values_list("sequence", flat=True)) == [1]
    with transaction.atomic():
        # the counter rolled back too: no gap for consumers to chase
        assert _emit(organization).sequence == 2


@pytest.mark.django_db
def test_emit_is_one_query(organization, django_assert_num_queries):
    with transaction.atomic():
        _emit(organization)
        with django_assert_num_queries(1):
            _emit(organization)


@pytest.mark.django_db
def test_envelope_matches_the_contract(organization):
    with transaction.atomic():
        event = _emit(organization, name="Ana")
    stored = Event.objects.select_related("organization").get(pk=event.pk)
    envelope = stored.envelope()
    assert set(envelope) == {
        "id",
        "type",
        "version",
        "timestamp",
        "organization",
        "sequence",
        "trace_id",
        "data",
    }
    assert envelope["id"] == str(event.id)
    assert envelope["organization"] == {"id": str(organization.id), "slug": organization.slug}
    assert envelope["timestamp"].endswith("Z")
    assert len(envelope["trace_id"]) == 32
    assert envelope["data"]["name"] == "Ana"
    assert envelope["version"] == 1


@pytest.mark.django_db
def test_unknown_type_is_a_programming_error(organization):
    with pytest.raises(UnknownEventType), transaction.atomic():
        _emit(organization, type="contact.teleported")


@pytest.mark.django_db
def test_data_is_checked_against_the_schema(organization):
    with pytest.raises(InvalidEventData, match="contact_id"), transaction.atomic():
        emit(
            organization=organization,
            type="contact.created",
            subject_type="contact",
            subject_id="x",
            data={},
        )


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_is_refused(organization):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        _emit(organization)


@pytest.mark.django_db(transaction=True)
def test_concurrent_emitters_get_gapless_unique_sequences():
    organization = OrganizationFactory()
    per_thread = 20

    def work():
        try:
            for _ in range(per_thread):
                with transaction.atomic():
                    _emit(organization)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(
        Event.objects.filter(organization=organization)
        .order_by("sequence")
        .values_list("sequence", "created_at")
    )
    assert [s for s, _ in rows] == list(range(1, 8 * per_thread + 1))
