from celery import shared_task
from django.conf import settings

from findings import queue


@shared_task(name="findings.poll_queue")
def poll_queue() -> int:
    """Periodic: take what waits on the findings queue; how many messages were handled."""
    if not settings.FINDINGS_QUEUE_URL:
        return 0
    return queue.drain(settings.FINDINGS_QUEUE_URL)
