"""The incident page's flag for evidence that failed its integrity check (the cases app
loads this in its template rather than importing evidence)."""

from __future__ import annotations

from typing import Any

from django import template

from evidence.choices import FAILED_INTEGRITY
from evidence.models import EvidenceItem

register = template.Library()


@register.simple_tag
def integrity_failures(incident: Any) -> list[EvidenceItem]:
    """The incident's items whose last check found them changed, missing, in error or
    unreadable: as the evidence page lists them, in one query."""
    return list(
        EvidenceItem.objects.filter(incident=incident, integrity__in=FAILED_INTEGRITY)
        .only("pk", "name", "integrity")
        .order_by("pk")
    )
