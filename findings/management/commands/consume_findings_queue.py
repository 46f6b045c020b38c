from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from findings import queue


class Command(BaseCommand):
    help = "Read findings from the SQS queue (FINDINGS_QUEUE_URL) with long polling, until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--queue-url", default=settings.FINDINGS_QUEUE_URL)
        parser.add_argument("--once", action="store_true", help="empty the queue once and stop")

    def handle(self, *args: Any, queue_url: str, once: bool, **options: Any) -> None:
        if not queue_url:
            raise CommandError("no queue: set FINDINGS_QUEUE_URL or pass --queue-url")
        while True:
            handled = queue.drain(queue_url, wait_seconds=0 if once else 20)
            if once:
                self.stdout.write(f"{handled} message(s) handled")
                return
