"""Reads of niche intelligence.

The decision engine and the message ingress call `niche_context` (cached per organization:
a cache hit costs no SQL), `prompt_for`, `opt_out_keywords` / `opt_out_keyword_kind` and
`platform_template_for`; the API calls `niche_list` and `niche_detail`. Everything returned
from the context is immutable plain data (frozen dataclasses), safe to share and to cache.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import F, Func, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from apps.core.errors import NotFound
from apps.niches.cache import (
    CONTEXT_TTL,
    SHARED_VERSION_KEY,
    context_key,
    organization_version_key,
    version_ensure,
)
from apps.niches.models import (
    AgentPack,
    ComplianceRule,
    ComplianceRuleKind,
    Niche,
    Objection,
    PlatformTemplate,
    Prompt,
    PromptPurpose,
    QualificationRule,
    Workflow,
)
from apps.niches.templating import prompt_render

__all__ = [
    "AgentPackData",
    "ComplianceRuleData",
    "NicheContext",
    "NicheData",
    "ObjectionData",
    "PromptData",
    "QualificationRuleData",
    "WorkflowData",
    "niche_context",
    "niche_detail",
    "niche_get_by_slug",
    "niche_list",
    "opt_out_keyword_kind",
    "opt_out_keywords",
    "platform_template_for",
    "prompt_for",
    "prompt_render",
]

logger = logging.getLogger(__name__)

# Always honoured, even if every opt_out_keywords rule were deactivated (CTIA minimum).
BASELINE_KEYWORDS = {
    "stop": frozenset({"STOP", "UNSUBSCRIBE"}),
    "start": frozenset({"START"}),
    "help": frozenset({"HELP"}),
}


# --- plain data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class NicheData:
    id: int
    slug: str
    name: str
    qualify_threshold: int
    disqualify_threshold: int


@dataclass(frozen=True)
class AgentPackData:
    key: str
    name: str
    agent_name: str
    persona: str
    tone: str


@dataclass(frozen=True)
class PromptData:
    """The effective prompt for a key: the organization's override, else the shared one."""

    key: str
    purpose: str
    channel: str  # "" = any channel
    template: str
    variables: tuple[str, ...]
    version: int  # the shared prompt's version
    is_override: bool
    based_on_version: int | None  # overrides: the shared version they were written against

    @property
    def is_outdated(self) -> bool:
        """An override written against an older version of the shared prompt."""
        return self.is_override and (self.based_on_version or 0) < self.version

    def render(self, variables) -> str:
        return prompt_render(self.template, variables)


@dataclass(frozen=True)
class QualificationRuleData:
    key: str
    name: str
    kind: str
    question: str
    answer_field: str
    condition: dict
    points: int


@dataclass(frozen=True)
class ComplianceRuleData:
    """See `apps.niches.models.ComplianceRule` for the semantics of each kind."""

    key: str
    name: str
    kind: str
    severity: str
    pattern: str
    replacement: str
    channels: tuple[str, ...]  # empty = every channel
    config: dict
    is_global: bool

    def applies_to(self, channel: str) -> bool:
        return not self.channels or channel in self.channels

    def regex(self) -> re.Pattern:
        return re.compile(self.pattern, re.IGNORECASE)


@dataclass(frozen=True)
class ObjectionData:
    key: str
    name: str
    trigger_phrases: tuple[str, ...]
    response_template: str


@dataclass(frozen=True)
class WorkflowData:
    key: str
    name: str
    trigger: str
    steps: tuple[dict, ...]
    n8n_workflow: str


@dataclass(frozen=True)
class NicheContext:
    """Everything an agent decision needs to know about the organization's niche."""

    niche: NicheData
    agent_pack: AgentPackData | None
    prompts: dict[str, PromptData]  # by key; treat as read-only
    qualification_rules: tuple[QualificationRuleData, ...]
    compliance_rules: tuple[ComplianceRuleData, ...]  # the niche's and the global ones
    objections: tuple[ObjectionData, ...]
    workflows: tuple[WorkflowData, ...]
    keywords: dict[str, frozenset[str]]  # see `opt_out_keywords`

    def prompt(self, key: str) -> PromptData | None:
        return self.prompts.get(key)

    def prompt_for_purpose(self, purpose: str, channel: str | None = None) -> PromptData | None:
        """The prompt for a purpose: one written for `channel` first, then an any-channel one;
        among equals, the first by key."""
        candidates = sorted(
            (p for p in self.prompts.values() if p.purpose == purpose),
            key=lambda p: (p.channel != (channel or ""), p.channel != "", p.key),
        )
        for prompt in candidates:
            if prompt.channel in ("", channel):
                return prompt
        return None

    def compliance_rules_of(
        self, kind: str, channel: str | None = None
    ) -> tuple[ComplianceRuleData, ...]:
        return tuple(
            rule
            for rule in self.compliance_rules
            if rule.kind == kind and (channel is None or rule.applies_to(channel))
        )

    def opt_out_keywords(self) -> dict[str, frozenset[str]]:
        """{"stop", "start", "help"} → upper-case whole-message keywords."""
        return dict(self.keywords)


@dataclass(frozen=True)
class _CacheEntry:
    versions: tuple[str, str]
    niche_id: int
    context: NicheContext


# --- niche context ------------------------------------------------------------------------------
def _prompt_rows(*, niche_id: int, organization) -> list[Prompt]:
    return list(
        Prompt.objects.filter(niche_id=niche_id, is_active=True)
        .filter(Q(organization__isnull=True) | Q(organization=organization))
        .order_by("key")
    )


_PURPOSE_ORDER = {purpose: index for index, purpose in enumerate(PromptPurpose.values)}


def _effective_prompts(rows: list[Prompt]) -> dict[str, PromptData]:
    """Shared prompts by key, each replaced by the organization's override if there is one,
    in conversation order (greeting, qualify, ... system). An override whose shared prompt
    no longer exists (retired) is ignored."""
    shared = {p.key: p for p in rows if p.organization_id is None}
    overrides = {p.key: p for p in rows if p.organization_id is not None}
    effective = {}
    for key, base in sorted(
        shared.items(), key=lambda item: (_PURPOSE_ORDER.get(item[1].purpose, 99), item[0])
    ):
        chosen = overrides.get(key, base)
        effective[key] = PromptData(
            key=key,
            purpose=base.purpose,
            channel=chosen.channel,
            template=chosen.template,
            variables=tuple(chosen.variables),
            version=base.version,
            is_override=chosen is not base,
            based_on_version=chosen.based_on_version if chosen is not base else None,
        )
    return effective


def _compliance_data(rule: ComplianceRule) -> ComplianceRuleData:
    return ComplianceRuleData(
        key=rule.key,
        name=rule.name,
        kind=rule.kind,
        severity=rule.severity,
        pattern=rule.pattern,
        replacement=rule.replacement,
        channels=tuple(rule.channels),
        config=rule.config,
        is_global=rule.niche_id is None,
    )


def _compliance_rules(niche_id: int):
    return ComplianceRule.objects.filter(
        Q(niche_id=niche_id) | Q(niche__isnull=True), is_active=True
    ).order_by("niche_id", "key")


def _keywords(rules, channel: str | None = None) -> dict[str, frozenset[str]]:
    """The CTIA baseline plus every active keyword rule (for `channel`, when given: a rule
    listing channels applies only to those)."""
    merged = {kind: set(words) for kind, words in BASELINE_KEYWORDS.items()}
    for rule in rules:
        if rule.kind != ComplianceRuleKind.OPT_OUT_KEYWORDS:
            continue
        if channel is not None and rule.channels and channel not in rule.channels:
            continue
        for kind, words in merged.items():
            words.update(_normalize_keyword(w) for w in rule.config.get(kind, []) if w.strip())
    return {kind: frozenset(words) for kind, words in merged.items()}


def _context_build(organization) -> NicheContext:
    niche = Niche.objects.get(pk=organization.primary_niche_id)
    pack = AgentPack.objects.filter(niche=niche).order_by("-is_default", "key").first()
    compliance_rules = tuple(_compliance_data(r) for r in _compliance_rules(niche.pk))
    return NicheContext(
        niche=NicheData(
            id=niche.pk,
            slug=niche.slug,
            name=niche.name,
            qualify_threshold=niche.qualify_threshold,
            disqualify_threshold=niche.disqualify_threshold,
        ),
        agent_pack=AgentPackData(
            key=pack.key,
            name=pack.name,
            agent_name=pack.agent_name,
            persona=pack.persona,
            tone=pack.tone,
        )
        if pack
        else None,
        prompts=_effective_prompts(_prompt_rows(niche_id=niche.pk, organization=organization)),
        qualification_rules=tuple(
            QualificationRuleData(
                key=r.key,
                name=r.name,
                kind=r.kind,
                question=r.question,
                answer_field=r.answer_field,
                condition=r.condition,
                points=r.points,
            )
            for r in QualificationRule.objects.filter(niche=niche, is_active=True).order_by(
                "order", "key"
            )
        ),
        compliance_rules=compliance_rules,
        keywords=_keywords(compliance_rules),
        objections=tuple(
            ObjectionData(
                key=o.key,
                name=o.name,
                trigger_phrases=tuple(o.trigger_phrases),
                response_template=o.response_template,
            )
            for o in Objection.objects.filter(niche=niche, is_active=True).order_by("order", "key")
        ),
        workflows=tuple(
            WorkflowData(
                key=w.key,
                name=w.name,
                trigger=w.trigger,
                steps=tuple(w.steps),
                n8n_workflow=w.n8n_workflow,
            )
            for w in Workflow.objects.filter(niche=niche, is_active=True).order_by("key")
        ),
    )


def niche_context(*, organization) -> NicheContext:
    """The organization's niche context: its primary niche's content with its overrides.

    Cached per organization; a hit is one cache round trip and no SQL. Changes to shared
    content (loader, admin) and to the organization's overrides invalidate it (see
    `apps.niches.cache`); so does a change of the organization's primary niche. If the
    cache is unreachable, the context is built from the database (7 queries).
    """
    shared_key = SHARED_VERSION_KEY
    org_key = organization_version_key(organization.pk)
    ctx_key = context_key(organization.pk)
    try:
        values = cache.get_many([shared_key, org_key, ctx_key])
    except Exception:
        logger.warning("niche cache unavailable; reading the database", exc_info=True)
        return _context_build(organization)

    entry = values.get(ctx_key)
    if (
        isinstance(entry, _CacheEntry)
        and entry.niche_id == organization.primary_niche_id
        and entry.versions == (values.get(shared_key), values.get(org_key))
        and None not in entry.versions
    ):
        return entry.context

    try:
        versions = (
            version_ensure(shared_key, values.get(shared_key)),
            version_ensure(org_key, values.get(org_key)),
        )
    except Exception:
        logger.warning("niche cache unavailable; reading the database", exc_info=True)
        return _context_build(organization)
    context = _context_build(organization)
    try:
        cache.set(
            ctx_key,
            _CacheEntry(versions, organization.primary_niche_id, context),
            timeout=CONTEXT_TTL,
        )
    except Exception:
        logger.warning("niche cache write failed", exc_info=True)
    return context


def prompt_for(
    *, organization, key: str | None = None, purpose: str | None = None, channel: str | None = None
) -> PromptData | None:
    """The organization's effective prompt by `key`, or the best one for a `purpose` (and
    `channel`). Exactly one of key / purpose. None when the niche has no such prompt."""
    if (key is None) == (purpose is None):
        raise ValueError("Pass exactly one of key= or purpose=.")
    context = niche_context(organization=organization)
    if key is not None:
        return context.prompt(key)
    return context.prompt_for_purpose(purpose, channel)


def _normalize_keyword(text: str) -> str:
    """Whole-message keyword form: trimmed, upper case, inner spaces collapsed, surrounding
    punctuation removed ("Stop." → "STOP", " opt  out! " → "OPT OUT")."""
    text = re.sub(r"\s+", " ", text).strip().upper()
    return re.sub(r"^[^\w]+|[^\w]+$", "", text)


def opt_out_keywords(*, organization, channel: str | None = None) -> dict[str, frozenset[str]]:
    """{"stop": ..., "start": ..., "help": ...}: upper-case whole-message keywords for the
    organization (global rules, its niche's rules, and the CTIA minimum), optionally only the
    rules that apply to `channel`. Cached with the niche context."""
    context = niche_context(organization=organization)
    if channel is None:
        return context.opt_out_keywords()
    return _keywords(context.compliance_rules, channel)


def opt_out_keyword_kind(*, organization, text: str) -> str | None:
    """ "stop", "start" or "help" when the whole message is one of those keywords, else None."""
    normalized = _normalize_keyword(text or "")
    if not normalized or len(normalized) > 40:
        return None
    for kind, words in opt_out_keywords(organization=organization).items():
        if normalized in words:
            return kind
    return None


def platform_template_for(
    *,
    organization,
    channel: str,
    purpose: str | None = None,
    language: str | None = None,
    name: str | None = None,
) -> PlatformTemplate | None:
    """The approved provider template to use outside the 24-hour window: by `name` when
    given, else for `purpose`.

    Preference: the organization's own template, then a shared one for its niche, then a
    shared one for every niche; within each, the requested language first. One query.
    """
    if not name and not purpose:
        return None
    wanted = {"name": name} if name else {"purpose": purpose}
    candidates = list(
        PlatformTemplate.objects.filter(channel=channel, is_approved=True, **wanted).filter(
            Q(organization=organization)
            | Q(organization__isnull=True, niche_id=organization.primary_niche_id)
            | Q(organization__isnull=True, niche__isnull=True)
        )
    )
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda t: (
            t.organization_id is None,
            t.niche_id is None,
            language is not None and t.language != language,
            t.name,
        ),
    )


# --- API reads ----------------------------------------------------------------------------------
def niche_get_by_slug(*, slug: str) -> Niche:
    niche = Niche.objects.filter(slug=slug).first()
    if niche is None:
        raise NotFound(f"Unknown niche {slug!r}.", code="unknown_niche")
    return niche


def _subquery_count(queryset):
    """COUNT(*) of `queryset` as a scalar subquery (no GROUP BY)."""
    counted = queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _count(model, **filters):
    return _subquery_count(model.objects.filter(niche=OuterRef("pk"), is_active=True, **filters))


def niche_list(*, organization):
    """The niches with counts of their active content, in one query.

    `compliance_rule_count` counts the niche's rules plus the global ones (what applies to
    the niche, as `niche_detail` lists them); `prompt_count` counts shared prompts (an
    override replaces one, it does not add one). `is_primary` marks the organization's niche.
    """
    global_rules = ComplianceRule.objects.filter(niche__isnull=True, is_active=True)
    return Niche.objects.annotate(
        prompt_count=_count(Prompt, organization__isnull=True),
        workflow_count=_count(Workflow),
        qualification_rule_count=_count(QualificationRule),
        compliance_rule_count=_count(ComplianceRule) + _subquery_count(global_rules),
        objection_count=_count(Objection),
        is_primary=Q(pk=organization.primary_niche_id),
    ).order_by("name")


@dataclass(frozen=True)
class NicheDetail:
    niche: Niche
    is_primary: bool
    agent_pack: AgentPack | None
    prompts: list[PromptData]
    workflows: list[Workflow]
    qualification_rules: list[QualificationRule]
    compliance_rules: list[ComplianceRuleData]
    objections: list[Objection]


def niche_detail(*, organization, slug: str) -> NicheDetail:
    """One niche's content as this organization sees it (its overrides applied). 7 queries."""
    niche = niche_get_by_slug(slug=slug)
    prompts = _effective_prompts(_prompt_rows(niche_id=niche.pk, organization=organization))
    return NicheDetail(
        niche=niche,
        is_primary=niche.pk == organization.primary_niche_id,
        agent_pack=AgentPack.objects.filter(niche=niche).order_by("-is_default", "key").first(),
        prompts=list(prompts.values()),
        workflows=list(Workflow.objects.filter(niche=niche, is_active=True).order_by("key")),
        qualification_rules=list(
            QualificationRule.objects.filter(niche=niche, is_active=True).order_by("order", "key")
        ),
        compliance_rules=[_compliance_data(r) for r in _compliance_rules(niche.pk)],
        objections=list(
            Objection.objects.filter(niche=niche, is_active=True).order_by("order", "key")
        ),
    )
