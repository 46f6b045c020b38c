"""Celery entry points for evidence."""

from __future__ import annotations

from celery import shared_task

from evidence import services
from evidence.choices import Integrity
from evidence.models import EvidenceItem


@shared_task(name="evidence.verify_all")
def verify_all() -> int:
    """Re-hash every stored item; return how many failed (each is flagged and recorded)."""
    failed = 0
    items = EvidenceItem.objects.filter(disposed_at__isnull=True, store__in=["local", "s3"])
    for item in items.select_related("incident").order_by("verified_at", "pk").iterator():
        if services.verify(item) != Integrity.INTACT:
            failed += 1
    return failed
