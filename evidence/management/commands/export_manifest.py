from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cases.models import Incident
from evidence import manifest


class Command(BaseCommand):
    help = (
        "Write an incident's signed evidence manifest: FILE, FILE.sig (base64 Ed25519) and "
        "FILE.pub.pem (a copy of the deployment's public key, for a third party to compare "
        "with the one obtained out of band)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("reference", metavar="REF")
        parser.add_argument("output", metavar="FILE", help="ends in .json or .csv")

    def handle(self, *args: Any, reference: str, output: str, **options: Any) -> None:
        incident = Incident.objects.filter(reference=reference).first()
        if incident is None:
            raise CommandError(f"no such incident: {reference}")
        path = Path(output)
        if path.suffix not in (".json", ".csv"):
            raise CommandError("the manifest file must end in .json or .csv")
        built = manifest.build(incident)
        document = manifest.as_json(built) if path.suffix == ".json" else manifest.as_csv(built)
        path.write_bytes(document)
        Path(f"{output}.sig").write_text(manifest.sign(document) + "\n")
        Path(f"{output}.pub.pem").write_bytes(manifest.public_key_pem())
        self.stdout.write(
            f"{len(built['items'])} item(s), {len(built['custody'])} custody event(s) -> {output}"
        )
