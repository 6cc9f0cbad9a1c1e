"""Niche writes that belong to one organization: prompt overrides.

Shared content is written only by the loader (`apps.niches.seed`). An organization
customizes a prompt by saving an override with the same key; clearing it brings the shared
prompt back. Both invalidate the organization's cached niche context.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.core.choices import Channel
from apps.core.errors import ValidationFailed
from apps.niches.cache import niche_cache_invalidate
from apps.niches.content.common import ESSENTIAL_VARIABLES, VARIABLES
from apps.niches.models import Niche, Prompt
from apps.niches.templating import template_errors, template_variables

MAX_TEMPLATE_LENGTH = 4000


def _niche_of(organization, niche: Niche | None) -> Niche:
    return niche if niche is not None else organization.primary_niche


def prompt_shared_get(*, niche: Niche, key: str) -> Prompt:
    """The active shared prompt of a niche by key; ValidationFailed (naming `key`) if none."""
    shared = Prompt.objects.filter(
        niche=niche, key=key, organization__isnull=True, is_active=True
    ).first()
    if shared is None:
        raise ValidationFailed(
            f"key: the {niche.slug} niche has no prompt {key!r}.",
            code="unknown_prompt",
            details={"key": [f"No shared prompt {key!r} in niche {niche.slug!r}."]},
        )
    return shared


def prompt_override_validate(*, shared: Prompt, template: str, channel: str = "") -> list[str]:
    """Check an override's template against the shared prompt; return its variables.

    Rules: not blank, at most MAX_TEMPLATE_LENGTH characters, no stray braces, only the shared
    prompt's variables, and it keeps the essential ones the shared prompt has (`slots`,
    `booking_date`, `booking_time`: the message exists to carry them). Raises
    ValidationFailed naming the field. No side effects.
    """

    def fail(field: str, message: str, code: str = "invalid_template"):
        raise ValidationFailed(f"{field}: {message}", code=code, details={field: [message]})

    if not template.strip():
        fail("template", "The template must not be blank.")
    if len(template) > MAX_TEMPLATE_LENGTH:
        fail("template", f"The template must be at most {MAX_TEMPLATE_LENGTH} characters.")
    errors = template_errors(template)
    if errors:
        fail("template", errors[0])
    variables = template_variables(template)
    unknown = [name for name in variables if name not in shared.variables]
    if unknown:
        allowed = ", ".join("{" + v + "}" for v in shared.variables) or "none"
        fail(
            "template",
            f"Unknown variable(s) {', '.join('{' + v + '}' for v in unknown)}; "
            f"this prompt can use: {allowed}.",
        )
    missing = [v for v in shared.variables if v in ESSENTIAL_VARIABLES and v not in variables]
    if missing:
        fail(
            "template",
            f"The template must keep {', '.join('{' + v + '}' for v in missing)}.",
        )
    if channel and channel not in Channel.values:
        fail("channel", f"Unknown channel {channel!r}.", code="invalid_channel")
    return variables


def prompt_override_set(
    *,
    organization,
    key: str,
    template: str,
    channel: str | None = None,
    niche: Niche | None = None,
) -> Prompt:
    """Create or replace the organization's override of a shared prompt (atomic).

    `niche` defaults to the organization's primary niche; `channel` None keeps the current
    one (the shared prompt's for a new override). The override records the shared version it
    was written against; saving an unchanged override writes nothing. Invalidates the
    organization's niche context. Idempotent for identical input.
    """
    niche = _niche_of(organization, niche)
    shared = prompt_shared_get(niche=niche, key=key)
    variables = prompt_override_validate(shared=shared, template=template, channel=channel or "")
    with transaction.atomic():
        override = (
            Prompt.objects.select_for_update()
            .filter(niche=niche, key=key, organization=organization)
            .first()
        )
        if override is None:
            try:
                with transaction.atomic():
                    override = Prompt.objects.create(
                        niche=niche,
                        organization=organization,
                        key=key,
                        purpose=shared.purpose,
                        channel=shared.channel if channel is None else channel,
                        template=template,
                        variables=variables,
                        version=1,
                        based_on_version=shared.version,
                    )
                niche_cache_invalidate(organization_id=organization.pk)
                return override
            except IntegrityError:  # a concurrent first save won; update that row instead
                override = Prompt.objects.select_for_update().get(
                    niche=niche, key=key, organization=organization
                )
        wanted = {
            "template": template,
            "variables": variables,
            "channel": override.channel if channel is None else channel,
            "purpose": shared.purpose,
            "based_on_version": shared.version,
            "is_active": True,
        }
        changed = [name for name, value in wanted.items() if getattr(override, name) != value]
        if changed:
            for name in changed:
                setattr(override, name, wanted[name])
            update_fields = [*changed, "updated_at"]
            if "template" in changed or "variables" in changed:
                override.version += 1
                update_fields.append("version")
            override.save(update_fields=update_fields)
            niche_cache_invalidate(organization_id=organization.pk)
        return override


def prompt_override_clear(*, organization, key: str, niche: Niche | None = None) -> bool:
    """Delete the organization's override of `key`, so the shared prompt applies again.

    Returns whether there was one. Invalidates the organization's niche context. Idempotent.
    """
    niche = _niche_of(organization, niche)
    with transaction.atomic():
        deleted, _ = Prompt.objects.filter(niche=niche, key=key, organization=organization).delete()
        if deleted:
            niche_cache_invalidate(organization_id=organization.pk)
    return bool(deleted)


def prompt_shared_update(
    *, prompt: Prompt, template: str, channel: str, purpose: str, is_active: bool
) -> Prompt:
    """Hot-fix a shared prompt (superusers, from the admin). Atomic.

    The template may use any variable of the documented vocabulary; `variables` is derived
    from it, and `version` goes up when the template changes. Invalidates every cached
    niche context. The next `load_niches` run restores the content in apps/niches/content/,
    so lasting changes belong there.
    """
    if prompt.organization_id is not None:
        raise ValidationFailed("This is an organization override, not a shared prompt.")
    errors = template_errors(template)
    if not template.strip() or errors:
        message = errors[0] if errors else "The template must not be blank."
        raise ValidationFailed(f"template: {message}", details={"template": [message]})
    variables = template_variables(template)
    unknown = [v for v in variables if v not in VARIABLES]
    if unknown:
        message = f"Unknown variable(s): {', '.join(unknown)}; see docs/niches.md."
        raise ValidationFailed(f"template: {message}", details={"template": [message]})
    with transaction.atomic():
        current = Prompt.objects.select_for_update().get(pk=prompt.pk)
        bump = current.template != template or list(current.variables) != variables
        current.template, current.variables = template, variables
        current.channel, current.purpose, current.is_active = channel, purpose, is_active
        if bump:
            current.version += 1
        current.save()
        niche_cache_invalidate()
    return current
