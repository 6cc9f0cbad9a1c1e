"""The dev-only provider sandbox: the demo's sends go through the real send path and are
accepted locally; production settings never mount it."""

import importlib

import pytest

pytestmark = pytest.mark.django_db


def test_twilio_send_api_shape(client):
    response = client.post(
        "/sandbox/twilio/2010-04-01/Accounts/AC1/Messages.json",
        {"To": "+14155550100", "From": "+15005550006", "Body": "Hi"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["sid"].startswith("SM") and body["to"] == "+14155550100"


def test_whatsapp_send_api_shape(client):
    response = client.post(
        "/sandbox/whatsapp/v21.0/100000000000001/messages", {}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["messages"][0]["id"].startswith("wamid.")


def test_sandbox_only_answers_posts(client):
    assert client.get("/sandbox/twilio/2010-04-01/Accounts/AC1/Messages.json").status_code == 405


def test_production_never_mounts_it(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    production = importlib.import_module("config.settings.production")
    assert production.PROVIDER_SANDBOX is False
