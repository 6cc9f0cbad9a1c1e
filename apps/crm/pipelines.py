"""The default sales pipeline of each niche: ordered stages with win probability, won/lost
flags and how long a deal may sit idle in a stage before the churn guard flags it.

Data only; `services.pipeline_ensure_default` creates an organization's copy lazily.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageTemplate:
    name: str
    probability: int
    max_idle_days: int | None = None
    is_won: bool = False
    is_lost: bool = False


@dataclass(frozen=True)
class PipelineTemplate:
    name: str
    stages: tuple[StageTemplate, ...]


DEFAULT_PIPELINES: dict[str, PipelineTemplate] = {
    "fitness": PipelineTemplate(
        "Memberships",
        (
            StageTemplate("New lead", 10, max_idle_days=2),
            StageTemplate("Trial booked", 30, max_idle_days=7),
            StageTemplate("Trial attended", 50, max_idle_days=3),
            StageTemplate("Offer made", 70, max_idle_days=5),
            StageTemplate("Member", 100, is_won=True),
            StageTemplate("Lost", 0, is_lost=True),
        ),
    ),
    "med_spa": PipelineTemplate(
        "Treatments",
        (
            StageTemplate("New inquiry", 10, max_idle_days=2),
            StageTemplate("Consultation booked", 30, max_idle_days=10),
            StageTemplate("Consultation done", 50, max_idle_days=5),
            StageTemplate("Treatment plan sent", 65, max_idle_days=7),
            StageTemplate("Treatment booked", 100, is_won=True),
            StageTemplate("Lost", 0, is_lost=True),
        ),
    ),
    "real_estate": PipelineTemplate(
        "Buyers & sellers",
        (
            StageTemplate("New lead", 5, max_idle_days=2),
            StageTemplate("Qualified", 15, max_idle_days=7),
            StageTemplate("Viewing scheduled", 30, max_idle_days=7),
            StageTemplate("Offer submitted", 55, max_idle_days=10),
            StageTemplate("Under contract", 80, max_idle_days=45),
            StageTemplate("Closed", 100, is_won=True),
            StageTemplate("Lost", 0, is_lost=True),
        ),
    ),
    "consultant": PipelineTemplate(
        "Clients",
        (
            StageTemplate("New lead", 10, max_idle_days=3),
            StageTemplate("Discovery call booked", 25, max_idle_days=10),
            StageTemplate("Discovery call held", 40, max_idle_days=5),
            StageTemplate("Proposal sent", 60, max_idle_days=10),
            StageTemplate("Negotiation", 80, max_idle_days=14),
            StageTemplate("Client", 100, is_won=True),
            StageTemplate("Lost", 0, is_lost=True),
        ),
    ),
    "local_service": PipelineTemplate(
        "Jobs",
        (
            StageTemplate("New request", 15, max_idle_days=1),
            StageTemplate("Site visit scheduled", 35, max_idle_days=5),
            StageTemplate("Quote sent", 55, max_idle_days=5),
            StageTemplate("Job scheduled", 85, max_idle_days=14),
            StageTemplate("Job done", 100, is_won=True),
            StageTemplate("Lost", 0, is_lost=True),
        ),
    ),
}

GENERIC_PIPELINE = PipelineTemplate(
    "Sales",
    (
        StageTemplate("New", 10, max_idle_days=3),
        StageTemplate("Qualified", 30, max_idle_days=7),
        StageTemplate("Proposal", 60, max_idle_days=10),
        StageTemplate("Won", 100, is_won=True),
        StageTemplate("Lost", 0, is_lost=True),
    ),
)


def pipeline_template_for(niche_slug: str | None) -> PipelineTemplate:
    return DEFAULT_PIPELINES.get(niche_slug or "", GENERIC_PIPELINE)
