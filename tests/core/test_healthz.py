import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}}


def test_redis_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["postgresql"] == "ok"
    assert "Connection" in body["checks"]["redis"]


def test_redis_stopped(client, settings, private_redis):
    settings.REDIS_URL = private_redis.url
    assert client.get("/healthz").status_code == 200
    private_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["redis"]
    private_redis.start()
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_postgres_unreachable(client):
    original = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original
    assert response.status_code == 503
    assert response.json()["failed"] == ["postgresql"]


def test_metrics_exposed(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total" in response.content
