"""Celery entry points for evidence."""

from __future__ import annotations

from celery import shared_task

from evidence import services
from evidence.choices import FAILED_INTEGRITY
from evidence.models import EvidenceItem


@shared_task(name="evidence.verify_all")
def verify_all() -> int:
    """Re-hash every stored item and look at every snapshot; return how many failed (each
    is flagged and recorded, or logged when even that failed)."""
    items = EvidenceItem.objects.filter(disposed_at__isnull=True).select_related("incident")
    checked = services.verify_each(items.order_by("verified_at", "pk").iterator())
    return sum(
        1 for _, result in checked if isinstance(result, Exception) or result in FAILED_INTEGRITY
    )
