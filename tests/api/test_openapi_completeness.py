"""Every operation of the Core API's OpenAPI document (`/api/schema/`) is documented well
enough to use from n8n without reading code: a summary or description, and at least one
example of a request or a response (examples live on the operation's media types, not on
shared schema properties)."""

from __future__ import annotations

import pytest

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def examples_of(operation) -> list:
    found = []
    media = list((operation.get("requestBody") or {}).get("content", {}).values())
    for response in operation.get("responses", {}).values():
        media += list((response.get("content") or {}).values())
    for content in media:
        found += list((content.get("examples") or {}).values())
        if "example" in content:
            found.append({"value": content["example"]})
    return found


@pytest.mark.django_db
def test_every_operation_has_an_example_and_a_summary_or_description(schema):
    missing = []
    count = 0
    for label, operation in operations(schema):
        count += 1
        if not examples_of(operation):
            missing.append(f"{label}: no request or response example")
        if not (operation.get("summary") or operation.get("description")):
            missing.append(f"{label}: no summary or description")
    assert count >= 40
    assert not missing, "\n".join(missing)


@pytest.mark.django_db
def test_examples_have_values(schema):
    for label, operation in operations(schema):
        for example in examples_of(operation):
            assert example.get("value") is not None or example.get("externalValue"), label
