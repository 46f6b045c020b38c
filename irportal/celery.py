"""The Celery app: tasks acknowledged late, every task routed to a named queue."""

import os

from celery import Celery
from celery.schedules import crontab
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "irportal.settings")

app = Celery("irportal")
app.config_from_object("django.conf:settings", namespace="CELERY")

# The queues there are; a worker started without --queues consumes all of them.
QUEUES = ("default", "cases", "findings", "playbooks")

# Each task names its queue here; tests fail for a task that has none, so that no task can
# land on a queue no worker reads.
TASK_ROUTES = {
    "cases.flag_missed_acknowledgements": {"queue": "cases"},
    "findings.poll_queue": {"queue": "findings"},
    "irportal.purge_expired_tokens": {"queue": "default"},
    "playbooks.execute_action": {"queue": "playbooks"},
    "playbooks.undo_action": {"queue": "playbooks"},
    "playbooks.reconcile": {"queue": "playbooks"},
    "playbooks.check_accounts": {"queue": "playbooks"},
    "evidence.verify_all": {"queue": "default"},
}

app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="default",
    task_routes=TASK_ROUTES,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "flag-missed-acknowledgements": {
            "task": "cases.flag_missed_acknowledgements",
            "schedule": 60.0,
        },
        # Does nothing unless FINDINGS_QUEUE_URL is set.
        "poll-findings-queue": {"task": "findings.poll_queue", "schedule": 30.0},
        # Re-sends response actions whose task the broker lost or whose worker died.
        "reconcile-response-actions": {"task": "playbooks.reconcile", "schedule": 30.0},
        # Re-hashes every stored evidence item; a mismatch is flagged and recorded.
        "verify-evidence": {"task": "evidence.verify_all", "schedule": crontab(hour=3, minute=0)},
        "purge-expired-tokens": {"task": "irportal.purge_expired_tokens", "schedule": 3600.0},
        # Daily at 06:00 UTC: a response role someone broke is found before it is needed.
        "check-account-access": {
            "task": "playbooks.check_accounts",
            "schedule": crontab(minute=0, hour=6),
        },
    },
)
app.autodiscover_tasks()
