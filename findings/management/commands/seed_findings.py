from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from findings import services
from findings.demo import demo_stream
from findings.models import Finding
from irportal.actors import Actor


class Command(BaseCommand):
    help = "Send a demo stream of findings through intake and triage (once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--as", dest="username", default="ingest", help="the integration user")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        if Finding.objects.exists():
            self.stderr.write("Findings exist already; no demo stream sent.")
            return
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}; run seed_demo first")

        results = services.ingest(Actor.for_user(user), demo_stream())
        incidents = {
            f.finding.incident.reference for r in results for f in r.findings if f.finding.incident
        }
        self.stdout.write(
            f"Sent {len(results)} demo events; "
            f"incidents opened or joined: {', '.join(sorted(incidents))}"
        )
