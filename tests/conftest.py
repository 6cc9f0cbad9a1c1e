"""Shared fixtures. Tests run on the real PostgreSQL and Redis of this machine."""

from __future__ import annotations

import pytest
import redis as redis_lib
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import OrganizationFactory, api_key_for, staff_user
from tests.support.http import Receiver
from tests.support.services import PrivateRedis
from tests.support.workers import Worker


@pytest.fixture(scope="session", autouse=True)
def _clean_test_redis():
    """Start each run with an empty test Redis database (broker queues, cache, locks)."""
    client = redis_lib.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Pulse Fitness", slug="pulse")


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(name="Harbor Realty", slug="harbor", niche="real_estate")


def _api_client(organization) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(organization)}")
    client.organization = organization
    return client


@pytest.fixture
def api(organization) -> APIClient:
    """An API client authenticated with an API key of `organization`."""
    return _api_client(organization)


@pytest.fixture
def other_api(other_organization) -> APIClient:
    return _api_client(other_organization)


@pytest.fixture
def make_staff_client(client):
    """`make_staff_client(org, role=...)` → a Django test client logged in as that member."""
    from django.test import Client

    def make(organization, role: str = "operator", **kwargs):
        user = staff_user(organization, role=role, **kwargs)
        c = Client()
        c.force_login(user)
        c.user = user
        return c

    return make


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
def start_worker(transactional_db):
    """`start_worker(**kwargs)` → a real Celery worker; all are stopped at teardown."""
    workers: list[Worker] = []

    def start(**kwargs) -> Worker:
        kwargs.setdefault("redis_url", settings.REDIS_URL)
        worker = Worker(**kwargs).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def niches_loaded(db):
    from apps.niches.seed import niches_load

    niches_load()
