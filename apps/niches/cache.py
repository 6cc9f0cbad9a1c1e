"""Version tokens for the cached niche context (see `apps.niches.selectors.niche_context`).

Two tokens live in the Django cache (Redis), without expiry: one for all shared niche
content, one per organization (its prompt overrides). A cached context records the tokens it
was built with and is used only while both are unchanged, so invalidating is one SET of a
fresh token. Invalidation happens twice: at once, so the writer's own transaction reads fresh
data, and again after commit, so a context built by a concurrent reader from the
not-yet-committed state is discarded.

Cache failures (Redis down) never break a write or a read: they are logged, and reads fall
back to the database. Cached contexts also expire after `CONTEXT_TTL` seconds, which bounds
staleness if an invalidation was lost.
"""

from __future__ import annotations

import logging
import uuid

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

CONTEXT_TTL = 15 * 60
SHARED_VERSION_KEY = "niches:v:shared"


def organization_version_key(organization_id) -> str:
    return f"niches:v:org:{organization_id}"


def context_key(organization_id) -> str:
    return f"niches:ctx:{organization_id}"


def _new_token() -> str:
    return uuid.uuid4().hex


def _bump(key: str) -> None:
    try:
        cache.set(key, _new_token(), timeout=None)
    except Exception:  # the cache is an optimization: never fail the write for it
        logger.warning("niche cache invalidation failed for %s", key, exc_info=True)


def niche_cache_invalidate(*, organization_id=None) -> None:
    """Invalidate cached niche contexts: every organization's, or one organization's.

    Call it from the transaction that changes niche data (loader, services, admin). Side
    effects: cache writes now and after commit. Idempotent.
    """
    key = (
        SHARED_VERSION_KEY if organization_id is None else organization_version_key(organization_id)
    )
    _bump(key)
    transaction.on_commit(lambda: _bump(key))


def version_ensure(key: str, current: str | None) -> str:
    """The token stored under `key`, creating one if there is none yet."""
    if current is not None:
        return current
    cache.add(key, _new_token(), timeout=None)
    return cache.get(key)
