import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import TimelineEntry
from irportal.celery import QUEUES, TASK_ROUTES, app


def project_tasks():
    app.loader.import_default_modules()
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def test_every_task_has_a_route_to_a_queue_workers_read():
    tasks = project_tasks()

    assert tasks, "no project task was discovered"
    unrouted = [name for name in tasks if name not in TASK_ROUTES]
    assert unrouted == [], f"add these tasks to TASK_ROUTES: {unrouted}"
    assert {route["queue"] for route in TASK_ROUTES.values()} <= set(QUEUES)


def test_tasks_are_acknowledged_late_and_requeued_when_a_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_every_scheduled_task_exists():
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in project_tasks()


@pytest.mark.redis
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_on_redis_runs_the_deadline_check(make_incident):
    """The real path: a message through Redis, a worker thread, a row in PostgreSQL."""
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    incident = make_incident(
        severity="sev1", reported_at=timezone.now() - timezone.timedelta(hours=1)
    )

    with start_worker(app, perform_ping_check=False, pool="solo"):
        app.send_task("cases.flag_missed_acknowledgements")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if TimelineEntry.objects.filter(
                incident=incident, kind=EntryKind.ACKNOWLEDGEMENT_MISSED
            ).exists():
                break
            time.sleep(0.2)

    assert TimelineEntry.objects.filter(
        incident=incident, kind=EntryKind.ACKNOWLEDGEMENT_MISSED
    ).exists()
