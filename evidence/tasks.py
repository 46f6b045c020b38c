"""Celery entry points for evidence."""

from __future__ import annotations

import logging

from celery import shared_task

from evidence import services
from evidence.choices import FAILED_INTEGRITY
from evidence.models import EvidenceItem

logger = logging.getLogger(__name__)


@shared_task(name="evidence.verify_all")
def verify_all() -> int:
    """Re-hash every stored item and look at every snapshot; return how many failed (each
    is flagged and recorded, or logged when even that failed)."""
    failed = 0
    items = EvidenceItem.objects.filter(disposed_at__isnull=True)
    for item in items.select_related("incident").order_by("verified_at", "pk").iterator():
        # One item's failure must not keep the others from being checked.
        try:
            result = services.verify(item)
        except Exception:
            logger.exception(
                "evidence.verify_crashed incident=%s item=%s", item.incident.reference, item.pk
            )
            failed += 1
            continue
        if result in FAILED_INTEGRITY:
            failed += 1
    return failed
