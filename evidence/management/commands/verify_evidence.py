from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases.models import Incident
from evidence import services
from evidence.choices import Integrity
from evidence.models import EvidenceItem


class Command(BaseCommand):
    help = "Re-hash stored evidence; exit 1 naming each item that is changed or missing."

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
        checked = 0
        for item in items.order_by("pk").iterator():
            result = services.verify(item)
            if result not in (Integrity.INTACT,) and item.store in ("local", "s3"):
                failed.append(f"{item.incident.reference} #{item.pk} {item.name}: {result}")
            checked += 1
        if failed:
            raise CommandError(f"{len(failed)} of {checked} item(s) failed: " + "; ".join(failed))
        self.stdout.write(f"{checked} item(s) verified, all intact")
