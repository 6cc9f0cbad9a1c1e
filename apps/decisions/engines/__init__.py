"""Decision engines: `rules` (default, offline) and `llm` (OpenAI-compatible), and the one
function that picks between them.
"""

from __future__ import annotations

import logging

from django.conf import settings

from apps.decisions.engines.base import EngineResult
from apps.decisions.engines.llm import LLMEngine, LLMFailure
from apps.decisions.engines.rules import RulesEngine

logger = logging.getLogger(__name__)

ENGINES = ("rules", "llm")


def engine_requested(override: str | None = None) -> str:
    """The engine to use: `override` (the simulator's choice), else `DECISION_ENGINE`."""
    engine = override or settings.DECISION_ENGINE
    return engine if engine in ENGINES else "rules"


def engine_run(ctx, *, requested: str) -> EngineResult:
    """Run the requested engine; the rules engine answers when the LLM cannot, and the
    result says why (`fallback_reason`). Never raises for LLM problems. No transaction may
    be open (the LLM call is network I/O)."""
    if requested != "llm":
        return RulesEngine().decide(ctx)
    if not ctx.agent_active:
        result = RulesEngine().decide(ctx)
        result.fallback_reason = "a person has taken over the conversation; the LLM was not asked"
        return result
    try:
        return LLMEngine().decide(ctx)
    except LLMFailure as failure:
        logger.warning("LLM engine failed, using the rules engine: %s", failure)
        result = RulesEngine().decide(ctx)
        result.fallback_reason = str(failure)[:300]
        result.prompt_tokens = failure.prompt_tokens
        result.completion_tokens = failure.completion_tokens
        return result


__all__ = ["ENGINES", "EngineResult", "LLMEngine", "LLMFailure", "RulesEngine", "engine_run"]
