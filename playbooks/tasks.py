"""Celery entry points of the run engine. An action's task carries only the action run's
id: the row says what to do, and `services` decides whether this worker may do it.

Known limit: the hard time limit below is enforced only by the prefork pool (production's
worker). Under the threads pool of `make run`, a hung action keeps its thread; once its
lease lapses another worker may act too. Actions look before they act and a late result
is not committed over a newer attempt's (`services._still_mine`), so that costs a repeated
AWS call, not a wrong record."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from playbooks import accounts, services

# A worker that hangs is stopped a little before its lease runs out, so the reconciler
# never hands an action to a second worker while the first still acts.
_TIME_LIMIT = max(settings.PLAYBOOK_ACTION_LEASE - 10, settings.PLAYBOOK_ACTION_LEASE * 0.8)


@shared_task(name="playbooks.execute_action", time_limit=_TIME_LIMIT)
def execute_action(action_run_id: int) -> str:
    return services.execute(action_run_id)


@shared_task(name="playbooks.undo_action", time_limit=_TIME_LIMIT)
def undo_action(action_run_id: int) -> str:
    return services.undo(action_run_id)


@shared_task(name="playbooks.reconcile")
def reconcile() -> int:
    return len(services.reconcile())


@shared_task(name="playbooks.check_accounts")
def check_accounts() -> int:
    """Prepared access, checked daily: every enabled account's role assumed once; the
    result is on each account's row. Returns how many failed."""
    return sum(1 for account in accounts.check_all() if not account.check_ok)
