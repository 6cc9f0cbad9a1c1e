import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.idempotency import idempotency_records_expire
from apps.core.models import IdempotencyRecord
from apps.events.models import Event
from tests.factories import api_key_for

pytestmark = pytest.mark.urls("tests.support.urls")


def post(client, body, key=None, method="post"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return getattr(client, method)("/probe/", body, format="json", **headers)


@pytest.mark.django_db
def test_without_a_key_every_request_runs(api, organization):
    post(api, {"name": "a"})
    post(api, {"name": "a"})
    assert Event.objects.filter(organization=organization).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "patch"])
def test_repeat_replays_the_stored_response(api, organization, method):
    first = post(api, {"name": "a"}, key="k-1", method=method)
    second = post(api, {"name": "a"}, key="k-1", method=method)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert Event.objects.filter(organization=organization).count() == 1


@pytest.mark.django_db
def test_same_key_different_body_is_422(api, organization):
    post(api, {"name": "a"}, key="k-2")
    response = post(api, {"name": "b"}, key="k-2")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Event.objects.filter(organization=organization).count() == 1


@pytest.mark.django_db
def test_client_errors_are_stored_and_replayed(api, organization):
    first = post(api, {"name": "a", "conflict": True}, key="k-3")
    second = post(api, {"name": "a", "conflict": True}, key="k-3")
    assert first.status_code == second.status_code == 409
    assert second["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_server_errors_are_not_stored_and_roll_back(api, organization):
    assert post(api, {"name": "a", "crash": True}, key="k-4").status_code == 500
    assert not IdempotencyRecord.objects.filter(key="k-4").exists()
    assert not Event.objects.filter(organization=organization).exists()
    # The client may retry the same key with a corrected request.
    assert post(api, {"name": "a"}, key="k-4").status_code == 201


@pytest.mark.django_db
def test_keys_are_per_organization(api, other_api, organization, other_organization):
    post(api, {"name": "a"}, key="shared")
    response = post(other_api, {"name": "a"}, key="shared")
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert Event.objects.filter(organization=other_organization).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["   ", "x" * 256])
def test_invalid_key_is_400(api, key):
    response = post(api, {"name": "a"}, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


@pytest.mark.django_db
def test_expired_keys_are_deleted(api, organization):
    post(api, {"name": "a"}, key="old")
    post(api, {"name": "a"}, key="new")
    IdempotencyRecord.objects.filter(key="old").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert idempotency_records_expire() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_duplicates_run_the_effect_once(organization):
    key = api_key_for(organization)
    barrier = threading.Barrier(10)
    responses = []
    lock = threading.Lock()

    def call():
        from django.db import connection

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        barrier.wait()
        try:
            response = client.post(
                "/probe/", {"name": "burst"}, format="json", HTTP_IDEMPOTENCY_KEY="burst-1"
            )
            with lock:
                responses.append(response)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.content for r in responses}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in responses) == 9
    assert Event.objects.filter(organization=organization).count() == 1
