import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.support.urls")]


def test_validation_error_names_the_field(api):
    response = api.post("/probe/", {"name": "x" * 51}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("name:")
    assert "name" in error["details"]


def test_missing_field(api):
    error = api.post("/probe/", {}, format="json").json()["error"]
    assert error["details"] == {"name": ["This field is required."]}


def test_malformed_json_is_400(api):
    response = api.post("/probe/", data=b'{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_wrong_content_type_is_415(api):
    response = api.post("/probe/", data="name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_domain_error_keeps_its_code(api):
    response = api.post("/probe/", {"name": "a", "conflict": True}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "probe_conflict",
        "message": "probe conflict",
        "details": {},
    }


def test_method_not_allowed(api):
    response = api.delete("/probe/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/v1/does-not-exist/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unexpected_exception_is_a_json_500_without_details(api):
    response = api.post("/probe/", {"name": "a", "crash": True}, format="json")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
