from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from knox.models import AuthToken


class Command(BaseCommand):
    help = "Issue an API token for a user and print it as the last line (it is shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--days", type=int, default=None, help="expire after this many days (default: never)"
        )

    def handle(self, *args: Any, username: str, days: int | None, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {username!r}")
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        expiry = timedelta(days=days) if days else None
        _, token = AuthToken.objects.create(user=user, expiry=expiry)
        self.stderr.write(f"Token for {username}; send it as 'Authorization: Token <key>':")
        self.stdout.write(token)
