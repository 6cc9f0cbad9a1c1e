"""Load (or upgrade) the shared niche content from `apps.niches.content`.

`niches_load` is idempotent and safe to run at any time (`manage.py load_niches`, data
migrations, test factories):

- Rows are matched on natural keys (a niche's slug; `(niche, key)`; a compliance rule's
  `key`; a WhatsApp template's `(channel, name, language)`), compared field by field, and
  written only when they differ: a second run issues SELECTs only.
- A shared prompt whose template changes gets `version + 1`. Organization overrides
  (prompts and platform templates with an organization) are never read or written.
- Shared rows that disappeared from the content are retired (`is_active = False`), never
  deleted: organizations' overrides and history may point at them.
- Agent packs bundle their niche's prompts and rules; workflow templates are linked to the
  niches whose workflows use them.
- When anything changed, cached niche contexts are invalidated.

Writers are serialized with a PostgreSQL advisory lock, taken only when there is something
to write. Works with the live models or a migration's historical app registry (`apps=`):
fields the registry's models do not have yet are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.apps import apps as global_apps
from django.db import connection, transaction

from apps.niches import content
from apps.niches.cache import niche_cache_invalidate

_LOCK_ID = 0x5B_4E_1C_E5  # pg_advisory_xact_lock key for niche loads

KINDS = (
    "niches",
    "prompts",
    "workflows",
    "qualification_rules",
    "compliance_rules",
    "objections",
    "agent_packs",
    "workflow_templates",
    "platform_templates",
)


@dataclass
class LoadResult:
    """How many rows of each kind were created, updated or retired."""

    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    retired: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    @property
    def changed(self) -> bool:
        return any(any(counts.values()) for counts in (self.created, self.updated, self.retired))

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "retired": self.retired}


class _Changed(Exception):
    """Raised by a dry run at the first difference: there is something to write."""


def _plain(value):
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Loader:
    def __init__(self, registry, *, write: bool):
        self.models = {
            name: registry.get_model("niches", name)
            for name in (
                "Niche",
                "Prompt",
                "Workflow",
                "QualificationRule",
                "ComplianceRule",
                "Objection",
                "AgentPack",
                "WorkflowTemplate",
                "PlatformTemplate",
            )
        }
        self.write = write
        self.result = LoadResult()
        self.created_objects: dict[str, list] = defaultdict(list)
        self.updated_pks: dict[str, set] = defaultdict(set)  # counted once per row

    # --- generic row sync -------------------------------------------------------------------
    def _note(self, bucket: str, kind: str) -> None:
        if not self.write:
            raise _Changed
        getattr(self.result, bucket)[kind] += 1

    def sync(self, kind, model, queryset, key_fields, rows, *, retire_field=None, on_change=None):
        """Make `queryset` match `rows`; return {natural key: row object} of the wanted rows."""
        fields = {f.attname for f in model._meta.concrete_fields}
        existing = {tuple(getattr(obj, f) for f in key_fields): obj for obj in queryset}
        wanted: dict[tuple, dict] = {}
        for row in rows:
            values = {name: _plain(value) for name, value in row.items() if name in fields}
            if retire_field and retire_field in fields:
                values.setdefault(retire_field, True)
            wanted[tuple(values[f] for f in key_fields)] = values

        # Retire first: a retired default agent pack must give way before a new one arrives.
        if retire_field and retire_field in fields:
            for key, obj in existing.items():
                if key not in wanted and getattr(obj, retire_field):
                    self._note("retired", kind)
                    setattr(obj, retire_field, False)
                    obj.save(update_fields=[retire_field])

        objects: dict[tuple, object] = {}
        to_create = []
        for key, values in wanted.items():
            obj = existing.get(key)
            if obj is None:
                self._note("created", kind)
                obj = model(**values)
                to_create.append(obj)
            else:
                changed = [name for name, value in values.items() if getattr(obj, name) != value]
                if changed:
                    self._note("updated", kind)
                    self.updated_pks[kind].add(obj.pk)
                    extra = on_change(obj, changed) if on_change else []
                    for name in changed:
                        setattr(obj, name, values[name])
                    obj.save(update_fields=changed + extra)
            objects[key] = obj
        if to_create:
            model.objects.bulk_create(to_create)
            self.created_objects[kind] += to_create
        return objects

    def sync_m2m(self, kind, model, relation: str, wanted: dict[int, set[int]]) -> None:
        """Make the `relation` many-to-many links of the given owners exactly `wanted`."""
        m2m = model._meta.get_field(relation)
        through = m2m.remote_field.through
        owner_field, target_field = m2m.m2m_field_name(), m2m.m2m_reverse_field_name()
        current: dict[int, set[int]] = defaultdict(set)
        for owner_id, target_id in through.objects.filter(
            **{f"{owner_field}_id__in": list(wanted)}
        ).values_list(f"{owner_field}_id", f"{target_field}_id"):
            current[owner_id].add(target_id)
        created = {obj.pk for obj in self.created_objects[kind]}
        to_add = []
        for owner_id, targets in wanted.items():
            missing, extra = targets - current[owner_id], current[owner_id] - targets
            if not (missing or extra):
                continue
            if owner_id not in created | self.updated_pks[kind]:
                self._note("updated", kind)  # a new row's links are part of its creation
                self.updated_pks[kind].add(owner_id)
            to_add += [
                through(**{f"{owner_field}_id": owner_id, f"{target_field}_id": target_id})
                for target_id in missing
            ]
            if extra:
                through.objects.filter(
                    **{f"{owner_field}_id": owner_id, f"{target_field}_id__in": extra}
                ).delete()
        if to_add:
            through.objects.bulk_create(to_add)

    # --- the content ------------------------------------------------------------------------
    @staticmethod
    def _by_niche(rows, niche_ids):
        return [
            {
                **{k: v for k, v in row.items() if k != "niche"},
                "niche_id": niche_ids.get(row["niche"]),
            }
            for row in rows
        ]

    def run(self) -> LoadResult:
        m = self.models
        niches = self.sync(
            "niches", m["Niche"], m["Niche"].objects.all(), ("slug",), content.NICHES
        )
        niche_ids = {slug: obj.pk for (slug,), obj in niches.items()}

        def bump_version(prompt, changed):
            if "template" in changed or "variables" in changed:
                prompt.version += 1
                return ["version", "updated_at"]
            return ["updated_at"]

        prompts = self.sync(
            "prompts",
            m["Prompt"],
            m["Prompt"].objects.filter(organization__isnull=True),
            ("niche_id", "key"),
            self._by_niche(content.PROMPTS, niche_ids),
            retire_field="is_active",
            on_change=bump_version,
        )
        self.sync(
            "workflows",
            m["Workflow"],
            m["Workflow"].objects.all(),
            ("niche_id", "key"),
            self._by_niche(content.WORKFLOWS, niche_ids),
            retire_field="is_active",
        )
        qualification_rules = self.sync(
            "qualification_rules",
            m["QualificationRule"],
            m["QualificationRule"].objects.all(),
            ("niche_id", "key"),
            self._by_niche(content.QUALIFICATION_RULES, niche_ids),
            retire_field="is_active",
        )
        compliance_rules = self.sync(
            "compliance_rules",
            m["ComplianceRule"],
            m["ComplianceRule"].objects.all(),
            ("key",),
            self._by_niche(content.COMPLIANCE_RULES, niche_ids),
            retire_field="is_active",
        )
        objections = self.sync(
            "objections",
            m["Objection"],
            m["Objection"].objects.all(),
            ("niche_id", "key"),
            self._by_niche(content.OBJECTIONS, niche_ids),
            retire_field="is_active",
        )
        packs = self.sync(
            "agent_packs",
            m["AgentPack"],
            m["AgentPack"].objects.all(),
            ("niche_id", "key"),
            self._by_niche(content.AGENT_PACKS, niche_ids),
            retire_field="is_default",
        )
        self._sync_pack_bundles(packs, prompts, qualification_rules, compliance_rules, objections)
        templates = self.sync(
            "workflow_templates",
            m["WorkflowTemplate"],
            m["WorkflowTemplate"].objects.all(),
            ("key",),
            content.WORKFLOW_TEMPLATES,
        )
        users: dict[int, set[int]] = {obj.pk: set() for obj in templates.values()}
        for row in content.WORKFLOWS:
            if row["n8n_workflow"]:
                users[templates[(row["n8n_workflow"],)].pk].add(niche_ids[row["niche"]])
        self.sync_m2m("workflow_templates", m["WorkflowTemplate"], "niches", users)
        self.sync(
            "platform_templates",
            m["PlatformTemplate"],
            m["PlatformTemplate"].objects.filter(organization__isnull=True),
            ("channel", "name", "language"),
            self._by_niche(content.PLATFORM_TEMPLATES, niche_ids),
            retire_field="is_approved",
        )
        return self.result

    def _sync_pack_bundles(self, packs, prompts, qualification_rules, compliance_rules, objections):
        """A niche's default pack bundles its prompts, rules (incl. global) and objections."""

        def ids_by_niche(objects):
            grouped: dict[int | None, set[int]] = defaultdict(set)
            for obj in objects.values():
                grouped[obj.niche_id].add(obj.pk)
            return grouped

        pack_model = self.models["AgentPack"]
        niche_of = {obj.pk: obj.niche_id for obj in packs.values()}
        for relation, objects, with_global in (
            ("prompts", prompts, False),
            ("qualification_rules", qualification_rules, False),
            ("compliance_rules", compliance_rules, True),
            ("objections", objections, False),
        ):
            grouped = ids_by_niche(objects)
            wanted = {
                pack_id: grouped[niche_id] | (grouped[None] if with_global else set())
                for pack_id, niche_id in niche_of.items()
            }
            self.sync_m2m("agent_packs", pack_model, relation, wanted)


def niches_load(*, apps=None) -> LoadResult:
    """Create or upgrade the shared niche content; see the module docstring. Idempotent."""
    registry = apps or global_apps
    with transaction.atomic():
        try:
            return _Loader(registry, write=False).run()  # nothing differs: reads only
        except _Changed:
            pass
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
        result = _Loader(registry, write=True).run()
        if result.changed:
            niche_cache_invalidate()
        return result
