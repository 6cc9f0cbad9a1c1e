import pytest

from tests.decisions import factories as f


@pytest.fixture
def fitness(db):
    return f.organization("fitness")


@pytest.fixture
def ana(fitness):
    return f.contact(fitness)


@pytest.fixture
def rules_engine(settings):
    settings.DECISION_ENGINE = "rules"
    settings.LLM_API_BASE = ""


@pytest.fixture
def llm(settings, receiver):
    """The LLM engine pointed at a fake OpenAI-compatible server on 127.0.0.1."""
    settings.DECISION_ENGINE = "llm"
    settings.LLM_API_BASE = receiver.url + "/v1"
    settings.LLM_API_KEY = "sk-test-123"
    settings.LLM_MODEL = "test-model-1"
    settings.LLM_TIMEOUT_SECONDS = 2
    settings.LLM_MAX_ATTEMPTS = 2
    return receiver
