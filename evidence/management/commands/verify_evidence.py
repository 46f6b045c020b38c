from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases.models import Incident
from evidence import services
from evidence.choices import FAILED_INTEGRITY, Integrity, StoreKind
from evidence.models import EvidenceItem


class Command(BaseCommand):
    help = (
        "Re-hash stored evidence and look at each snapshot; exit 1 naming each item that is "
        "changed, missing, in error or could not be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("references", nargs="*", metavar="REF", help="default: every incident")

    def handle(self, *args: Any, references: list[str], **options: Any) -> None:
        items = EvidenceItem.objects.filter(disposed_at__isnull=True).select_related("incident")
        if references:
            known = set(
                Incident.objects.filter(reference__in=references).values_list(
                    "reference", flat=True
                )
            )
            missing = set(references) - known
            if missing:
                raise CommandError(f"no such incident: {', '.join(sorted(missing))}")
            items = items.filter(incident__reference__in=references)

        failed = []
        checked = snapshots = 0
        for item, result in services.verify_each(items.order_by("pk").iterator()):
            named = f"{item.incident.reference} #{item.pk} {item.name}"
            checked += 1
            if item.store == StoreKind.EBS_SNAPSHOT:
                snapshots += 1
            if isinstance(result, Exception):
                failed.append(f"{named}: could not be checked ({type(result).__name__}: {result})")
            elif result in FAILED_INTEGRITY:
                failed.append(f"{named}: {Integrity(result).label.lower()}")

        if failed:
            raise CommandError(f"{len(failed)} of {checked} item(s) failed: " + "; ".join(failed))
        by_state = f"; {snapshots} of them snapshots, checked by their state" if snapshots else ""
        self.stdout.write(f"{checked} item(s) verified, all intact{by_state}")
