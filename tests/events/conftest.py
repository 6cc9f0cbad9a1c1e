import pytest

from tests.events.processes import FAST, Beat


@pytest.fixture
def fast_delivery(settings):
    """The compressed delivery timing, in this process too."""
    for name, value in FAST.items():
        setattr(settings, name, value)
    return settings


@pytest.fixture
def start_beat(transactional_db):
    """`start_beat(redis_url=..., extra_env=...)` → a real celery beat; stopped at teardown."""
    beats: list[Beat] = []

    def start(**kwargs) -> Beat:
        beat = Beat(**kwargs).start()
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()
