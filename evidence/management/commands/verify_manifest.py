from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evidence import manifest


class Command(BaseCommand):
    help = (
        "Check a manifest against its signature with this deployment's key; exit 1 if a single "
        "byte changed. The FILE.pub.pem beside it is never trusted: whoever changed the manifest "
        "could have replaced it too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest_file", metavar="FILE")
        parser.add_argument("--signature", help="default: FILE.sig")
        parser.add_argument(
            "--public-key",
            metavar="PATH",
            help="check with this PEM public key instead of the deployment's (for someone "
            "without the deployment's key, who obtained its public half out of band)",
        )

    def handle(self, *args: Any, manifest_file: str, **options: Any) -> None:
        document_path = Path(manifest_file)
        signature_path = Path(options["signature"] or f"{manifest_file}.sig")
        key_path = Path(options["public_key"]) if options["public_key"] else None
        for path in (document_path, signature_path, key_path):
            if path is not None and not path.is_file():
                raise CommandError(f"no such file: {path}")

        signature = signature_path.read_text().strip()
        public_key = key_path.read_bytes() if key_path else None
        try:
            valid = manifest.verify(document_path.read_bytes(), signature, public_key)
        except (ImproperlyConfigured, ValueError) as error:
            raise CommandError(str(error)) from error
        checked_with = str(key_path) if key_path else "this deployment's key"
        if not valid:
            raise CommandError(
                f"{manifest_file}: the signature does not match {checked_with}; "
                "the manifest was changed or signed with another key"
            )
        self.stdout.write(f"{manifest_file}: signature valid ({checked_with})")
