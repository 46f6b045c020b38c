from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evidence import manifest


class Command(BaseCommand):
    help = "Check a manifest against its signature; exit 1 if a single byte changed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest_file", metavar="FILE")
        parser.add_argument("--signature", help="default: FILE.sig")
        parser.add_argument(
            "--public-key",
            help="PEM file (default: FILE.pub.pem if present, else this deployment's key)",
        )

    def handle(self, *args: Any, manifest_file: str, **options: Any) -> None:
        document_path = Path(manifest_file)
        signature_path = Path(options["signature"] or f"{manifest_file}.sig")
        key_path = Path(options["public_key"] or f"{manifest_file}.pub.pem")
        for path in (document_path, signature_path):
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
        public_key = key_path.read_bytes() if key_path.is_file() else None
        signature = signature_path.read_text().strip()
        if not manifest.verify(document_path.read_bytes(), signature, public_key):
            raise CommandError(f"{manifest_file}: the signature does not match; it was changed")
        self.stdout.write(f"{manifest_file}: signature valid")
