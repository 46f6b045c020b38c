from celery import shared_task

from cases import services


@shared_task(name="cases.flag_missed_acknowledgements")
def flag_missed_acknowledgements() -> list[str]:
    """Periodic: flag incidents nobody acknowledged within their severity's deadline."""
    return services.flag_missed_acknowledgements()
