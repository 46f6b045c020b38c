from celery import shared_task
from django.utils import timezone
from knox.models import AuthToken


@shared_task(name="irportal.purge_expired_tokens")
def purge_expired_tokens() -> int:
    """Periodic: delete API tokens past their expiry; how many were deleted."""
    deleted, _ = AuthToken.objects.filter(expiry__lt=timezone.now()).delete()
    return deleted
