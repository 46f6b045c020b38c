from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from playbooks import library


class Command(BaseCommand):
    help = (
        "Import playbooks from YAML files (as export_playbook writes them). A file that "
        "changes a playbook makes its next version. If any file is bad, each bad file is "
        "named on one line and nothing is imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")

    def handle(self, *args: Any, files: list[Path], **options: Any) -> None:
        documents, problems = library.read_all(files)
        if problems:
            raise CommandError("\n".join(str(problem) for problem in problems))

        with transaction.atomic():
            saved = [
                library.save(document, builtin=False, created_by="import_playbook")
                for document in documents
            ]
        for path, (playbook, new) in zip(files, saved, strict=True):
            outcome = "imported" if new else "unchanged"
            self.stdout.write(f"{path}: {playbook.slug} v{playbook.version} {outcome}")
