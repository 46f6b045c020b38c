from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases.models import Incident, TimelineEntry


class Command(BaseCommand):
    help = "Recompute incidents' timeline hash chains; fail naming the first broken entry."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("references", nargs="*", metavar="REF", help="default: every incident")

    def handle(self, *args: Any, references: list[str], **options: Any) -> None:
        incidents = Incident.objects.order_by("pk").only("pk", "reference")
        if references:
            incidents = incidents.filter(reference__in=references)
            missing = set(references) - set(incidents.values_list("reference", flat=True))
            if missing:
                raise CommandError(f"no such incident: {', '.join(sorted(missing))}")

        checked = 0
        for incident in incidents.iterator():
            broken = TimelineEntry.objects.verify_chain(incident)
            if broken:
                raise CommandError(f"timeline broken: {broken}")
            checked += 1
        self.stdout.write(f"{checked} timeline(s) verified, all chains hold")
