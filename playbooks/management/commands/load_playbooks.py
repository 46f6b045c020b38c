from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from playbooks import library


class Command(BaseCommand):
    help = (
        "Load the built-in playbooks of playbooks/library/. A new file becomes version 1, a "
        "changed one the next version; unchanged files change nothing, so it runs on every "
        "deploy."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        documents, problems = library.read_all(library.library_files())
        if problems:
            raise CommandError("\n".join(str(problem) for problem in problems))

        # All or nothing: a deploy never runs with half of a new library.
        with transaction.atomic():
            saved = [
                library.save(document, builtin=True, created_by="load_playbooks")
                for document in documents
            ]
        for playbook, new in saved:
            self.stdout.write(
                f"{playbook.slug} v{playbook.version} {'loaded' if new else 'unchanged'}"
            )
