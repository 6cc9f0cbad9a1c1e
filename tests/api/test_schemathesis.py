"""Property-based tests of the whole Core API from its own OpenAPI schema (Schemathesis):
authenticated calls with generated inputs never get a 5xx, and every response conforms to
the documented schema. One test per operation."""

from contextlib import contextmanager
from functools import cache

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import checks

from tests.factories import api_key_for


@contextmanager
def _connections_kept_open():
    # As Django's test client does: the test's transaction must outlive each request.
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@cache
def api_schema():
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


def operations():
    return {op.ok().label: op.ok() for op in api_schema().get_all_operations()}


@pytest.fixture
def bearer(organization, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 0
    from apps.crm.services import contact_upsert

    contact_upsert(organization=organization, email="kim@example.com", name="Kim")
    return f"Bearer {api_key_for(organization)}"


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(operations()))
def test_operation(label, bearer):
    operation = operations()[label]

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def run(case):
        response = case.call(headers={"Authorization": bearer})
        case.validate_response(
            response, checks=[checks.not_a_server_error, checks.response_schema_conformance]
        )

    with _connections_kept_open():
        run()
