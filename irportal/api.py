"""API plumbing shared by every app: pagination, errors, model serializers."""

import copy
from collections.abc import Callable
from functools import partial
from typing import Any, TypeGuard

from django.core import paginator as django_paginator
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from rest_framework import fields, filters, pagination, serializers, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from irportal.errors import StateConflict


class KeysFirstPaginator(django_paginator.Paginator):
    """Django's paginator, reading a page of a queryset in two steps.

    OFFSET makes the database produce, and throw away, every row before the page. So the
    page's primary keys are read first, with the queryset's filters and ordering: skipping
    keys is cheap, and PostgreSQL can often do it from the ordering's index alone (an
    index-only scan) without touching the table. The page's rows are then read by key.

    A page nearer the end than the start is read from the end, with the ordering
    reversed, so the last page skips as few rows as the first. That is done only when
    the ordering is total (it reaches the primary key or a unique, non-null field): with
    ties, the rows on either side of a page boundary could differ between the two reads.

    Anything else (a list, a sliced, distinct or combined queryset) is paged as Django does.
    """

    def page(self, number: Any) -> django_paginator.Page:
        queryset = self.object_list
        if not _pages_by_key(queryset):
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        all_keys = queryset.values_list("pk", flat=True)
        if self.count - top < bottom and _ordering_is_total(queryset):
            keys = list(all_keys.reverse()[self.count - top : self.count - bottom])[::-1]
        else:
            keys = list(all_keys[bottom:top])
        # In the keys' order: the rows' own ordering may tie where the keys' did not.
        by_key = {row.pk: row for row in queryset.filter(pk__in=keys)}
        rows = [by_key[key] for key in keys if key in by_key]
        return self._get_page(rows, number, self)  # type: ignore[attr-defined,no-any-return]


def _pages_by_key(object_list: Any) -> TypeGuard[QuerySet[Any]]:
    if not isinstance(object_list, QuerySet):
        return False
    query = object_list.query
    return not (query.is_sliced or query.distinct or query.combinator)


def _ordering_is_total(queryset: QuerySet[Any]) -> bool:
    """Whether the ordering puts the rows in one order only: no two rows tie."""
    query = queryset.query
    opts = query.get_meta()
    ordering = query.order_by or ((opts.ordering or ()) if query.default_ordering else ())
    for item in ordering:
        if not isinstance(item, str):
            continue  # an expression: may tie
        name = item.lstrip("-")
        if name == "pk":
            return True
        if LOOKUP_SEP in name:
            continue
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:
            continue  # an annotation, or "?"
        if getattr(field, "primary_key", False) or (
            getattr(field, "unique", False) and not getattr(field, "null", True)
        ):
            return True
    return False


class OrderingFilter(filters.OrderingFilter):
    """DRF's ordering, made total: rows that tie on the asked-for fields follow their key,
    so a row never shows on two pages or on none."""

    def get_ordering(self, request: Any, queryset: QuerySet[Any], view: Any) -> Any:
        ordering = super().get_ordering(request, queryset, view)
        if ordering and not any(field.lstrip("-") in ("pk", "id") for field in ordering):
            ordering = [*ordering, "-pk" if ordering[0].startswith("-") else "pk"]
        return ordering


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200
    django_paginator_class = KeysFirstPaginator


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus 409 for refused state changes and 400 for model validation."""
    if isinstance(exc, StateConflict):
        return Response({"detail": str(exc), "code": "conflict"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        return Response(as_serializer_error(exc), status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


# The fields and the validators each ModelSerializer class builds from its model, built
# once per class: the fields as a maker of fresh copies for each.
_FIELD_MAKERS: dict[type, dict[str, Callable[[], fields.Field]]] = {}
_MODEL_VALIDATORS: dict[type, list[Any]] = {}


class ModelSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """DRF's ModelSerializer, building its fields from the model once per class.

    DRF builds every field afresh from the model's metadata each time a serializer is
    made: about 0.35 ms for an incident. What it builds depends on the class and its model
    only, so it is kept, and each serializer gets copies of its own (20 µs for the
    incident's 23 fields; constructing them again from their arguments takes 120 µs, a
    deep copy as DRF makes of declared fields 270 µs). A subclass that adapts a field to
    its context (the request, the incident) does so after calling this, on its own fields.

    The serializer's own validators (unique together, unique for date) are likewise
    derived from the model's constraints on every validation; they are kept too. They
    hold no state of their own: each is called with the serializer it validates for.
    """

    def get_fields(self) -> dict[str, fields.Field]:
        makers = _FIELD_MAKERS.get(type(self))
        if makers is None:
            built = super().get_fields()
            makers = _FIELD_MAKERS[type(self)] = {
                name: copier(field) for name, field in built.items()
            }
        return {name: make() for name, make in makers.items()}

    def get_validators(self) -> list[Any]:
        built = _MODEL_VALIDATORS.get(type(self))
        if built is None:
            built = _MODEL_VALIDATORS[type(self)] = super().get_validators()
        return list(built)


def copier(field: fields.Field) -> Callable[[], fields.Field]:
    """What makes new, unbound copies of `field`, which is not bound and is kept unchanged.

    Unbound, a field's state is what its constructor made of its arguments, so a copy of
    that state is the field the arguments would make again. Its lists, dicts and sets are
    copied, so that a serializer that changes its field's validators or error messages
    changes only its own; what they hold is shared, as a deep copy shares validators:
    choices, querysets (re-evaluated on every use) and callables are not changed by the
    fields that hold them. Fields that hold other fields (nested serializers, a list's
    child) are deep-copied, since a field is bound to one parent.
    """
    state = vars(field)
    if isinstance(field, serializers.BaseSerializer) or any(
        isinstance(value, fields.Field) for value in state.values()
    ):
        return partial(copy.deepcopy, field)
    containers = [name for name, value in state.items() if isinstance(value, list | dict | set)]
    field_class = type(field)

    def fresh_copy() -> fields.Field:
        fresh = object.__new__(field_class)
        fresh_state = fresh.__dict__
        fresh_state.update(state)
        for name in containers:
            fresh_state[name] = state[name].copy()
        return fresh

    return fresh_copy
