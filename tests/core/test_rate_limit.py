import pytest

pytestmark = pytest.mark.django_db


def test_a_runaway_key_gets_429_with_retry_after_and_others_do_not(api, other_api, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 0.5
    settings.API_RATE_LIMIT_BURST = 3
    codes = [api.get("/api/v1/organization/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/organization/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["burst"] == 3
    assert other_api.get("/api/v1/organization/").status_code == 200


def test_the_limiter_fails_open_without_redis(api, settings, private_redis):
    from apps.core import ratelimit

    settings.API_RATE_LIMIT_PER_SECOND = 0.5
    settings.API_RATE_LIMIT_BURST = 1
    settings.REDIS_URL = private_redis.url
    ratelimit._client = None
    try:
        private_redis.stop()
        assert [api.get("/api/v1/organization/").status_code for _ in range(3)] == [200] * 3
    finally:
        ratelimit._client = None


def test_zero_turns_it_off(api, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 0
    assert all(api.get("/api/v1/organization/").status_code == 200 for _ in range(5))
