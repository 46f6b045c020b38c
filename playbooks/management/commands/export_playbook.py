from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from playbooks import library


class Command(BaseCommand):
    help = "Write a playbook as YAML, as import_playbook reads it: its newest version by default."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # `--version N` names the playbook's version: Django's own --version gives way.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", metavar="SLUG")
        parser.add_argument(
            "--version", type=int, dest="playbook_version", metavar="N", help="Default: newest."
        )
        parser.add_argument("-o", "--output", type=Path, metavar="FILE")

    def handle(
        self,
        *args: Any,
        slug: str,
        playbook_version: int | None,
        output: Path | None,
        **options: Any,
    ) -> None:
        try:
            text = library.export(slug, playbook_version)
        except LookupError as error:
            raise CommandError(str(error.args[0])) from None
        if output is None:
            self.stdout.write(text, ending="")
            return
        output.write_text(text, encoding="utf-8")
