"""Pagination for every list endpoint, and the OpenAPI shape of a page."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response


class DefaultPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class CreatedCursorPagination(CursorPagination):
    """Cursor pagination for big, append-only tables (events, messages): no COUNT(*)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-id")


_page_serializers: dict[str, type[serializers.Serializer]] = {}


def page_of(name: str, item: type[serializers.Serializer], *, cursor: bool = False):
    """The serializer documenting one page of `item`s (for `extend_schema(responses=...)`).

    Page-number pages carry `count`, `next`, `previous`, `results`; cursor pages have no
    `count`. Cached by name so a component is defined once.
    """
    if name not in _page_serializers:
        fields = {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        }
        if not cursor:
            fields = {"count": serializers.IntegerField(), **fields}
        _page_serializers[name] = type(name, (serializers.Serializer,), fields)
    return _page_serializers[name]


def paginated_response(
    view,
    queryset,
    output: type[serializers.Serializer],
    *,
    pagination_class=DefaultPagination,
    context: dict | None = None,
) -> Response:
    """Render one page of `queryset` with `output` (what every list view does)."""
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(output(page, many=True, context=context or {}).data)
