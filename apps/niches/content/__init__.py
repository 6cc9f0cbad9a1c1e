"""The shared niche content, as plain data. `apps.niches.seed.niches_load` writes it.

One module per niche (`fitness`, `med_spa`, ...) holds that niche's NICHE, AGENT_PACK,
PROMPTS, OBJECTIONS, QUALIFICATION_RULES, COMPLIANCE_RULES and WORKFLOWS; `common` holds
what applies to every niche. This package flattens them into rows keyed by natural keys
(a niche's slug, a row's `key`). To change content: edit the module, run `load_niches`
(and add a migration that runs it, so every deployment gets the change).
"""

from __future__ import annotations

from apps.niches.content import common, consultant, fitness, local_service, med_spa, real_estate

NICHE_MODULES = (fitness, med_spa, real_estate, consultant, local_service)


def _with_niche(module, rows: list[dict], *, ordered: bool = False) -> list[dict]:
    slug = module.NICHE["slug"]
    out = []
    for index, row in enumerate(rows):
        item = {"niche": slug, **row}
        if ordered:
            item["order"] = index
        out.append(item)
    return out


NICHES: list[dict] = [module.NICHE for module in NICHE_MODULES]

PROMPTS: list[dict] = [
    row for module in NICHE_MODULES for row in _with_niche(module, module.PROMPTS)
]
WORKFLOWS: list[dict] = [
    row for module in NICHE_MODULES for row in _with_niche(module, module.WORKFLOWS)
]
QUALIFICATION_RULES: list[dict] = [
    row
    for module in NICHE_MODULES
    for row in _with_niche(module, module.QUALIFICATION_RULES, ordered=True)
]
OBJECTIONS: list[dict] = [
    row for module in NICHE_MODULES for row in _with_niche(module, module.OBJECTIONS, ordered=True)
]
COMPLIANCE_RULES: list[dict] = [
    {"niche": None, **row} for row in common.GLOBAL_COMPLIANCE_RULES
] + [row for module in NICHE_MODULES for row in _with_niche(module, module.COMPLIANCE_RULES)]
AGENT_PACKS: list[dict] = [
    {"niche": module.NICHE["slug"], "is_default": True, **module.AGENT_PACK}
    for module in NICHE_MODULES
]
WORKFLOW_TEMPLATES: list[dict] = common.WORKFLOW_TEMPLATES
PLATFORM_TEMPLATES: list[dict] = [{"niche": None, **row} for row in common.PLATFORM_TEMPLATES]
