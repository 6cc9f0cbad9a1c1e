"""Console pages of the CRM: the pipeline board and the deal move it posts to.

Both are registered with `admin.site.register_page` (staff login required) and scoped to
the organizations the staff member belongs to; moving a deal needs a working role
(admin, moderator, operator) in the deal's organization.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from apps.core.errors import DomainError
from apps.crm import selectors, services
from apps.crm.models import Deal, Stage
from apps.tenancy.roles import WORKERS
from apps.tenancy.selectors import user_organization_ids, user_role_in


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _can_move(user, organization_id) -> bool:
    return user.is_superuser or user_role_in(user=user, organization_id=organization_id) in WORKERS


def _board_url(organization_id, pipeline_id) -> str:
    query = urlencode({"organization": organization_id, "pipeline": pipeline_id})
    return f"{reverse('admin:pipeline_board')}?{query}"


def pipeline_board(request):
    """A column per stage with its open deals as cards, totals per stage and a value chart."""
    organizations = selectors.user_organization_options(user=request.user)
    if not organizations:
        raise PermissionDenied
    organization = organizations[0]
    if request.GET.get("organization"):
        wanted = _uuid(request.GET["organization"])
        organization = next((o for o in organizations if o.pk == wanted), None)
        if organization is None:
            raise Http404("No such organization.")
    default = services.pipeline_ensure_default(organization=organization)
    pipelines = list(selectors.pipeline_list(organization=organization))
    pipeline = default
    if request.GET.get("pipeline"):
        wanted = _uuid(request.GET["pipeline"])
        pipeline = next((p for p in pipelines if p.pk == wanted), None)
        if pipeline is None:
            raise Http404("No such pipeline.")
    board = selectors.pipeline_board(organization=organization, pipeline=pipeline)
    now = timezone.now()
    biggest = board.max_amount or 1
    for column in board.columns:
        column.bar_percent = round(float(column.amount / biggest) * 100, 1)
        for deal in column.deals:
            deal.idle_days = (now - deal.stage_changed_at).days if deal.stage_changed_at else 0
            limit = column.stage.max_idle_days
            deal.is_idle = bool(limit and deal.status == "open" and deal.idle_days > limit)
    context = {
        **admin.site.each_context(request),
        "title": f"Pipeline: {pipeline.name}",
        "organization": organization,
        "organizations": organizations,
        "pipeline": pipeline,
        "pipelines": pipelines,
        "board": board,
        "stages": [c.stage for c in board.columns],
        "can_move": _can_move(request.user, organization.pk),
        "closed_days": (now - board.closed_since).days,
    }
    return TemplateResponse(request, "admin/crm/pipeline_board.html", context)


def pipeline_move(request):
    """POST `deal`, `stage` (and `lost_reason`): move the deal, then back to the board."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    deal_id, stage_id = _uuid(request.POST.get("deal")), _uuid(request.POST.get("stage"))
    deals = Deal.objects.select_related("pipeline", "organization", "stage")
    if not request.user.is_superuser:
        deals = deals.filter(organization_id__in=user_organization_ids(user=request.user))
    deal = deals.filter(pk=deal_id).first() if deal_id else None
    if deal is None:
        raise Http404("No such deal.")
    back = _board_url(deal.organization_id, deal.pipeline_id)
    if not _can_move(request.user, deal.organization_id):
        raise PermissionDenied
    stage = Stage.objects.filter(pk=stage_id, pipeline=deal.pipeline).first() if stage_id else None
    if stage is None:
        messages.error(request, f"Choose a stage of {deal.pipeline.name}.")
        return HttpResponseRedirect(back)
    try:
        services.deal_move_stage(
            organization=deal.organization,
            deal=deal,
            stage=stage,
            changed_by=request.user,
            lost_reason=request.POST.get("lost_reason", ""),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(back)
    if stage.pk != deal.stage_id:
        messages.success(request, f"{deal.title}: {deal.stage.name} → {stage.name}.")
    return HttpResponseRedirect(back)
