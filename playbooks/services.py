"""The run engine: starting playbooks and actions, approvals, cancelling, undo, and the
worker side that acts on AWS.

How work flows, and why nothing is lost:

1. Asking for an action (a playbook step reached, or a direct request) commits an
   `ActionRun` in state `queued` and, after commit, sends a task carrying its id. The
   database, not the broker, is the record of work to do.
2. A worker takes the action run: it locks the row, marks it `running` with a lease, and
   commits. Then, with no lock held, the action looks at the target and acts only where
   the target is not already as asked.
3. The worker commits the outcome, the timeline entry, the states of the steps waiting on
   it, and the next step of each run, whose task is sent after that commit.
4. `reconcile` (periodic) re-sends queued actions no worker took in time and actions whose
   worker's lease ran out. Since actions look before they act, the second worker repeats
   no side effect the first one completed.

Runs advance one step at a time. Every state change writes its timeline entry, naming who
(or which rule) asked, in the transaction that makes the change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from cases.choices import EntryKind, Status
from cases.models import Incident, TimelineEntry
from irportal import roles
from irportal.actors import Actor
from irportal.errors import StateConflict
from playbooks import actions, definitions
from playbooks.actions.base import Outcome
from playbooks.aws import AwsContext, session_for, session_name
from playbooks.choices import (
    IN_FLIGHT_ACTION_STATES,
    ActionState,
    OnFailure,
    RunStatus,
    StepState,
)
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun, RunStep

logger = logging.getLogger(__name__)

# AWS error codes worth another attempt later, once botocore's own retries are spent.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)


# ---------------------------------------------------------------------------------------
# Asking


def start_run(
    actor: Actor,
    incident: Incident,
    playbook: Playbook,
    *,
    dry_run: bool = False,
    inputs: dict[str, Any] | None = None,
    rule: Any = None,
) -> PlaybookRun:
    """Start `playbook` on `incident`; it runs up to its first approval gate.

    Every step whose condition holds must resolve and validate now, so a run that cannot
    finish for want of an input is refused whole (a ValidationError naming each step).
    """
    if not playbook.enabled:
        raise StateConflict(f"{playbook} is disabled")
    if incident.status == Status.CLOSED:
        raise StateConflict(f"{incident.reference} is closed")
    context = definitions.incident_context(incident, inputs)
    planned = [_plan_step(position, step, context) for position, step in enumerate(playbook.steps)]
    problems = {step["id"]: problem for step, problem in planned if problem}
    if problems:
        raise serializers.ValidationError({"steps": problems})

    with transaction.atomic():
        run = PlaybookRun(
            incident=incident,
            playbook=playbook,
            dry_run=dry_run,
            rule=rule,
            inputs=inputs or {},
            context=context,
        )
        run.set_actor(actor)
        run.save(force_insert=True)
        RunStep.objects.bulk_create(
            [_step_row(run, position, step) for position, (step, _) in enumerate(planned)]
        )
        TimelineEntry.objects.append(
            incident,
            actor,
            EntryKind.PLAYBOOK_STARTED,
            f"{'Dry run of' if dry_run else 'Started'} {playbook}",
            {
                "run": run.pk,
                "playbook": playbook.slug,
                "version": playbook.version,
                "dry_run": dry_run,
            },
        )
        _advance(run)
    logger.info(
        "playbook.started incident=%s run=%s playbook=%s dry_run=%s actor=%s",
        incident.reference,
        run.pk,
        playbook.slug,
        dry_run,
        actor,
    )
    return run


def _plan_step(
    position: int, step: dict[str, Any], context: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    """The step with its inputs resolved and validated, or the problem that stops it."""
    planned = {**step, "inputs": {}}
    if not definitions.holds(step.get("when"), context):
        return planned, None
    try:
        raw = definitions.step_inputs(step, context)
    except definitions.Unresolvable as missing:
        return planned, {
            "parameters": f"the incident has no {missing}; give it as an input ({missing}=…)"
        }
    action = actions.get(step["action"])
    try:
        planned["inputs"] = action.validate(raw)
    except serializers.ValidationError as error:
        return planned, error.detail
    problem = _account_problem(planned["inputs"]["account_id"])
    return planned, {"account_id": problem} if problem else None


def _account_problem(account_id: str) -> str | None:
    account = CloudAccount.objects.filter(account_id=account_id).first()
    if account is None:
        return f"account {account_id} is not registered"
    if not account.enabled:
        return f"account {account_id} is disabled"
    return None


def _step_row(run: PlaybookRun, position: int, step: dict[str, Any]) -> RunStep:
    action = actions.get(step["action"])
    approval = step.get("approval")
    return RunStep(
        run=run,
        position=position,
        key=step["id"],
        title=step.get("title") or action.title,
        action=action.name,
        parameters=step["inputs"],
        condition=step.get("when"),
        requires_approval=action.requires_approval if approval is None else approval,
        on_failure=step.get("on_failure") or OnFailure.STOP,
    )


def request_action(
    actor: Actor,
    incident: Incident,
    action_name: str,
    raw: dict[str, Any],
    *,
    dry_run: bool = False,
) -> tuple[ActionRun, bool]:
    """Ask for one action outside any playbook: (the run, whether it is new).

    An action that needs a lead's approval may be asked for directly only by a lead. Asking
    again for the same action, target and inputs returns the earlier run.
    """
    try:
        action = actions.get(action_name)
    except KeyError as error:
        raise serializers.ValidationError({"action": str(error.args[0])}) from None
    inputs = action.validate(raw)
    problem = _account_problem(inputs["account_id"])
    if problem:
        raise serializers.ValidationError({"account_id": problem})
    if action.requires_approval and not dry_run and not _may_approve(actor):
        raise PermissionDenied(f"{action.title} needs a lead's approval; ask a lead to run it")
    if incident.status == Status.CLOSED:
        raise StateConflict(f"{incident.reference} is closed")
    with transaction.atomic():
        return _get_or_queue(actor, incident, action.name, inputs, dry_run=dry_run)


def _idempotency_key(
    incident: Incident, action: str, target: str, inputs: dict[str, Any], dry_run: bool
) -> str:
    canonical = json.dumps(
        [incident.pk, action, target, inputs, dry_run], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _get_or_queue(
    actor: Actor, incident: Incident, action_name: str, inputs: dict[str, Any], *, dry_run: bool
) -> tuple[ActionRun, bool]:
    """The action run for this key, queued when new (or failed, undone or cancelled before:
    asking again then means trying again). Dry runs are done at once: they call no AWS."""
    action = actions.get(action_name)
    target = action.target(inputs)
    key = _idempotency_key(incident, action.name, target, inputs, dry_run)
    existing = ActionRun.objects.select_for_update().filter(idempotency_key=key).first()
    if existing and existing.state not in (
        ActionState.FAILED,
        ActionState.UNDONE,
        ActionState.CANCELLED,
    ):
        return existing, False

    account = CloudAccount.objects.get(account_id=inputs["account_id"])
    run = existing or ActionRun(
        incident=incident,
        action=action.name,
        target=target,
        parameters=inputs,
        idempotency_key=key,
        dry_run=dry_run,
        account=account,
        region=inputs["region"],
    )
    run.set_actor(actor)
    run.state = ActionState.QUEUED
    run.changed, run.error_code, run.error_message = None, "", ""
    run.save()
    TimelineEntry.objects.append(
        incident,
        actor,
        EntryKind.ACTION_REQUESTED,
        f"{'Dry run: ' if dry_run else ''}{action.describe(inputs)}",
        {"action_run": run.pk, "action": action.name, "target": target, "inputs": inputs},
    )
    if dry_run:
        _settle(
            run,
            Outcome(False, f"Would {action.describe(inputs)}", outputs={"dry_run": True}),
            request_ids=[],
        )
    else:
        _dispatch(run)
    return run, True


def _dispatch(run: ActionRun, countdown: float = 0) -> None:
    """Note when the task is sent, and send it once this transaction commits."""
    run.dispatched_at = timezone.now() + timedelta(seconds=countdown)
    run.lease_expires_at = None
    run.save(update_fields=["state", "dispatched_at", "lease_expires_at"])
    send_task(run.pk, undo=run.state == ActionState.UNDOING, countdown=countdown)


def send_task(action_run_id: int, *, undo: bool = False, countdown: float = 0) -> None:
    from playbooks import tasks  # the tasks module imports this one

    task = tasks.undo_action if undo else tasks.execute_action
    transaction.on_commit(lambda: task.apply_async((action_run_id,), countdown=countdown or None))


# ---------------------------------------------------------------------------------------
# People deciding


def _may_approve(actor: Actor) -> bool:
    return actor.user is not None and roles.is_lead(actor.user)


def _lock_run(run: PlaybookRun) -> PlaybookRun:
    return (
        PlaybookRun.objects.select_for_update()
        .select_related("incident", "playbook")
        .get(pk=run.pk)
    )


def _lock_step(step: RunStep) -> tuple[PlaybookRun, RunStep]:
    run = _lock_run(step.run)
    return run, RunStep.objects.select_for_update().get(pk=step.pk)


def approve(actor: Actor, step: RunStep) -> RunStep:
    if not _may_approve(actor):
        raise PermissionDenied("only a lead may approve a step")
    with transaction.atomic():
        run, step = _lock_step(step)
        if step.state != StepState.AWAITING_APPROVAL or run.finished:
            raise StateConflict(
                f"step {step.key} is {step.get_state_display().lower()}, not awaiting approval"
            )
        step.decided_by, step.decided_at = actor.name, timezone.now()
        step.save(update_fields=["decided_by", "decided_at"])
        TimelineEntry.objects.append(
            run.incident,
            actor,
            EntryKind.STEP_APPROVED,
            f"Approved step {step.position + 1} of {run.playbook.name}: {step.title}",
            _step_data(step),
        )
        _enqueue(run, step)
    return step


def reject(actor: Actor, step: RunStep, reason: str = "") -> RunStep:
    """Skip a gated step; the run goes on with the steps after it."""
    if not _may_approve(actor):
        raise PermissionDenied("only a lead may reject a step")
    with transaction.atomic():
        run, step = _lock_step(step)
        if step.state != StepState.AWAITING_APPROVAL or run.finished:
            raise StateConflict(
                f"step {step.key} is {step.get_state_display().lower()}, not awaiting approval"
            )
        step.state = StepState.SKIPPED
        step.reason = f"rejected by {actor.name}" + (f": {reason}" if reason else "")
        step.decided_by, step.decided_at = actor.name, timezone.now()
        step.finished_at = step.decided_at
        step.save()
        TimelineEntry.objects.append(
            run.incident,
            actor,
            EntryKind.STEP_REJECTED,
            f"Rejected step {step.position + 1} of {run.playbook.name}: {step.title}",
            {**_step_data(step), "reason": reason},
        )
        run.status = RunStatus.RUNNING
        run.save(update_fields=["status"])
        _advance(run)
    return step


def cancel(actor: Actor, run: PlaybookRun, reason: str = "") -> PlaybookRun:
    """Stop a run: steps not yet started are cancelled; a step already acting finishes."""
    with transaction.atomic():
        run = _lock_run(run)
        if run.finished:
            raise StateConflict(f"the run is already {run.get_status_display().lower()}")
        now = timezone.now()
        waiting = list(
            run.steps.select_for_update().filter(
                state__in=[StepState.PENDING, StepState.AWAITING_APPROVAL, StepState.QUEUED]
            )
        )
        for step in waiting:
            step.state, step.reason, step.finished_at = StepState.CANCELLED, "run cancelled", now
            step.save(update_fields=["state", "reason", "finished_at"])
            if step.action_run_id:
                _cancel_if_unwanted(step.action_run_id)
        run.status, run.finished_at, run.cancelled_by = RunStatus.CANCELLED, now, actor.name
        run.save(update_fields=["status", "finished_at", "cancelled_by"])
        TimelineEntry.objects.append(
            run.incident,
            actor,
            EntryKind.PLAYBOOK_CANCELLED,
            f"Cancelled playbook {run.playbook.name}" + (f": {reason}" if reason else ""),
            {"run": run.pk, "reason": reason, "steps_cancelled": [s.key for s in waiting]},
        )
    return run


def _cancel_if_unwanted(action_run_id: int) -> None:
    """An action still queued that no live step waits for is not done after all."""
    action_run = ActionRun.objects.select_for_update().get(pk=action_run_id)
    still_wanted = action_run.steps.filter(state__in=[StepState.QUEUED, StepState.RUNNING]).exists()
    if action_run.state == ActionState.QUEUED and not still_wanted:
        action_run.state = ActionState.CANCELLED
        action_run.finished_at = timezone.now()
        action_run.save(update_fields=["state", "finished_at"])


def request_undo(actor: Actor, action_run: ActionRun) -> ActionRun:
    action = actions.get(action_run.action)
    if not action.undoable:
        raise StateConflict(f"{action.title} cannot be undone")
    with transaction.atomic():
        action_run = (
            ActionRun.objects.select_for_update().select_related("incident").get(pk=action_run.pk)
        )
        if action_run.state != ActionState.SUCCEEDED:
            raise StateConflict(
                "only a succeeded action can be undone; "
                f"this one is {action_run.get_state_display().lower()}"
            )
        if action_run.dry_run or not action_run.changed:
            raise StateConflict("nothing to undo: this action changed nothing")
        action_run.state = ActionState.UNDOING
        action_run.undo_requested_by = actor.name
        action_run.undo_requested_by_kind = actor.kind
        action_run.save(update_fields=["state", "undo_requested_by", "undo_requested_by_kind"])
        TimelineEntry.objects.append(
            action_run.incident,
            actor,
            EntryKind.ACTION_REQUESTED,
            f"Undo requested: {action.describe(action_run.parameters)}",
            {"action_run": action_run.pk, "action": action.name, "undo": True},
        )
        _dispatch(action_run)
    return action_run


# ---------------------------------------------------------------------------------------
# The run engine


def _advance(run: PlaybookRun) -> None:
    """Take the run as far as it goes without waiting: skip steps whose condition fails,
    stop at an approval gate or at a step that has to wait for a worker, finish at the
    end. Called with the run locked (or new) inside a transaction."""
    if run.finished:
        return
    for step in run.steps.select_for_update().filter(state=StepState.PENDING).order_by("position"):
        if not definitions.holds(step.condition, run.context):
            _skip(run, step, "its condition does not hold")
            continue
        if step.requires_approval and not run.dry_run:
            step.state = StepState.AWAITING_APPROVAL
            step.save(update_fields=["state"])
            run.status = RunStatus.AWAITING_APPROVAL
            run.save(update_fields=["status"])
            TimelineEntry.objects.append(
                run.incident,
                run.actor,
                EntryKind.STEP_AWAITING_APPROVAL,
                f"Step {step.position + 1} of {run.playbook.name} awaits a lead's approval: "
                f"{actions.get(step.action).describe(step.parameters)}",
                _step_data(step),
            )
            return
        if not _enqueue(run, step):
            return
        run.refresh_from_db(fields=["status", "finished_at"])
        if run.finished:
            return
    _finish(run)


def _enqueue(run: PlaybookRun, step: RunStep) -> bool:
    """Hand the step to its action run; True when that is already settled (the same
    action was done before, or this is a dry run) and the run can go on at once."""
    action_run, _ = _get_or_queue(
        run.actor, run.incident, step.action, step.parameters, dry_run=run.dry_run
    )
    step.action_run = action_run
    step.started_at = step.started_at or timezone.now()
    step.state = StepState.RUNNING if action_run.state == ActionState.RUNNING else StepState.QUEUED
    step.save(update_fields=["action_run", "started_at", "state"])
    if run.status != RunStatus.RUNNING:
        run.status = RunStatus.RUNNING
        run.save(update_fields=["status"])
    if action_run.state in IN_FLIGHT_ACTION_STATES and action_run.state != ActionState.UNDOING:
        return False
    # Settled already: by this very call (a dry run), or earlier for the same key.
    _settle_step(run, step, action_run, advance=False)
    return step.state == StepState.SUCCEEDED or step.on_failure == OnFailure.CONTINUE


def _skip(run: PlaybookRun, step: RunStep, reason: str) -> None:
    step.state, step.reason, step.finished_at = StepState.SKIPPED, reason, timezone.now()
    step.save(update_fields=["state", "reason", "finished_at"])
    TimelineEntry.objects.append(
        run.incident,
        run.actor,
        EntryKind.STEP_SKIPPED,
        f"Skipped step {step.position + 1} of {run.playbook.name}: {step.title} ({reason})",
        _step_data(step),
    )


def _finish(run: PlaybookRun, failed_step: RunStep | None = None) -> None:
    now = timezone.now()
    if failed_step is not None:
        for step in run.steps.filter(state=StepState.PENDING):
            step.state, step.reason, step.finished_at = (
                StepState.CANCELLED,
                f"step {failed_step.key} failed",
                now,
            )
            step.save(update_fields=["state", "reason", "finished_at"])
    run.status = RunStatus.FAILED if failed_step else RunStatus.SUCCEEDED
    if run.steps.filter(state=StepState.FAILED).exists():
        run.status = RunStatus.FAILED
    run.finished_at = now
    run.save(update_fields=["status", "finished_at"])
    TimelineEntry.objects.append(
        run.incident,
        run.actor,
        EntryKind.PLAYBOOK_FINISHED,
        f"Playbook {run.playbook.name} {run.get_status_display().lower()}"
        + (f" at step {failed_step.key}" if failed_step else ""),
        {
            "run": run.pk,
            "status": run.status,
            "steps": {s.key: s.state for s in run.steps.order_by("position")},
        },
    )
    logger.info(
        "playbook.finished incident=%s run=%s status=%s", run.incident.reference, run.pk, run.status
    )


def _settle_step(run: PlaybookRun, step: RunStep, action_run: ActionRun, *, advance: bool) -> None:
    """Carry a settled action run's result onto a step waiting for it."""
    succeeded = action_run.state == ActionState.SUCCEEDED
    step.state = StepState.SUCCEEDED if succeeded else StepState.FAILED
    step.reason = "" if succeeded else f"{action_run.error_code}: {action_run.error_message}"[:500]
    if action_run.state == ActionState.CANCELLED:
        step.state, step.reason = StepState.CANCELLED, "its action was cancelled"
    elif action_run.state == ActionState.UNDOING:
        step.reason = "the same action is being undone; start it again once that is done"
    step.finished_at = timezone.now()
    step.save(update_fields=["state", "reason", "finished_at"])
    if run.finished or not advance:
        if (
            step.state == StepState.FAILED
            and step.on_failure == OnFailure.STOP
            and not run.finished
        ):
            _finish(run, failed_step=step)
        return
    if step.state == StepState.FAILED and step.on_failure == OnFailure.STOP:
        _finish(run, failed_step=step)
    else:
        _advance(run)


def _step_data(step: RunStep) -> dict[str, Any]:
    return {
        "run": step.run_id,
        "step": step.key,
        "position": step.position,
        "action": step.action,
        "inputs": step.parameters,
    }


# ---------------------------------------------------------------------------------------
# The worker side


@dataclass(frozen=True)
class Taken:
    action_run: ActionRun
    attempt: int


def execute(action_run_id: int) -> str:
    """Do one queued action (the task's body); returns what became of it, for logs."""
    taken = _take(action_run_id, ActionState.QUEUED, ActionState.RUNNING)
    if taken is None:
        return "not mine"
    action_run = taken.action_run
    action = actions.get(action_run.action)
    context = _aws_context(action_run)
    try:
        state = action.inspect(context, action_run.parameters)
        outcome = action.apply(context, action_run.parameters, state)
    except Exception as error:
        return _record_error(taken, error, context.request_ids)
    with transaction.atomic():
        if not _still_mine(taken, ActionState.RUNNING):
            return "taken over"
        _settle(taken.action_run, outcome, context.request_ids)
    return "succeeded"


def undo(action_run_id: int) -> str:
    taken = _take(action_run_id, ActionState.UNDOING, ActionState.UNDOING)
    if taken is None:
        return "not mine"
    action_run = taken.action_run
    action = actions.get(action_run.action)
    context = _aws_context(action_run)
    done = Outcome(
        changed=bool(action_run.changed),
        summary="",
        before=action_run.before,
        outputs=action_run.outputs,
    )
    try:
        outcome = action.undo(context, action_run.parameters, done)
    except Exception as error:
        return _record_error(taken, error, context.request_ids, undoing=True)
    with transaction.atomic():
        if not _still_mine(taken, ActionState.UNDOING):
            return "taken over"
        action_run = taken.action_run
        action_run.state = ActionState.UNDONE
        action_run.undone_at = timezone.now()
        action_run.request_ids = [*action_run.request_ids, *context.request_ids]
        action_run.lease_expires_at = None
        action_run.save()
        action_run.steps.filter(state=StepState.SUCCEEDED).update(state=StepState.UNDONE)
        TimelineEntry.objects.append(
            action_run.incident,
            action_run.undo_actor,
            EntryKind.ACTION_UNDONE,
            f"Undone: {outcome.summary}",
            {
                "action_run": action_run.pk,
                "action": action_run.action,
                "undo_requested_by": action_run.undo_requested_by,
                "outputs": outcome.outputs,
                "request_ids": context.request_ids,
            },
        )
    logger.info(
        "action.undone incident=%s action_run=%s action=%s",
        action_run.incident.reference,
        action_run.pk,
        action_run.action,
    )
    return "undone"


def _take(action_run_id: int, ready: str, taking: str) -> Taken | None:
    """Claim an action run for this worker: it is ready, or its last worker's lease ran
    out. Committed before any AWS call, so a crash leaves a lease that expires."""
    now = timezone.now()
    with transaction.atomic():
        action_run = (
            ActionRun.objects.select_for_update()
            .select_related("incident", "account")
            .filter(pk=action_run_id)
            .first()
        )
        if action_run is None:
            return None
        lapsed = action_run.state == taking and (
            action_run.lease_expires_at is None or action_run.lease_expires_at <= now
        )
        if action_run.state != ready and not lapsed:
            return None
        if (
            action_run.state == ready == taking
            and action_run.lease_expires_at
            and action_run.lease_expires_at > now
        ):
            return None
        action_run.state = taking
        action_run.attempts += 1
        action_run.started_at = action_run.started_at or now
        action_run.lease_expires_at = now + timedelta(seconds=settings.PLAYBOOK_ACTION_LEASE)
        action_run.save(update_fields=["state", "attempts", "started_at", "lease_expires_at"])
        if taking == ActionState.RUNNING:
            action_run.steps.filter(state=StepState.QUEUED).update(state=StepState.RUNNING)
    logger.info(
        "action.taken incident=%s action_run=%s action=%s attempt=%s",
        action_run.incident.reference,
        action_run.pk,
        action_run.action,
        action_run.attempts,
    )
    return Taken(action_run, action_run.attempts)


def _still_mine(taken: Taken, state: str) -> bool:
    current = ActionRun.objects.select_for_update().get(pk=taken.action_run.pk)
    if current.state != state or current.attempts != taken.attempt:
        logger.warning(
            "action.superseded action_run=%s attempt=%s", taken.action_run.pk, taken.attempt
        )
        return False
    return True


def _aws_context(action_run: ActionRun) -> AwsContext:
    reference = action_run.incident.reference
    assert action_run.account is not None
    session = session_for(action_run.account, session_name(reference, action_run.actor_name))
    return AwsContext(
        session, action_run.region, incident_reference=reference, action_run_id=action_run.pk
    )


def _settle(action_run: ActionRun, outcome: Outcome, request_ids: list[str]) -> None:
    """Record a finished action and move on every run that waited for it."""
    now = timezone.now()
    action_run.state = ActionState.SUCCEEDED
    action_run.changed = outcome.changed
    action_run.before = outcome.before
    action_run.outputs = {**outcome.outputs, "summary": outcome.summary}
    action_run.request_ids = [*action_run.request_ids, *request_ids]
    action_run.finished_at = now
    action_run.lease_expires_at = None
    action_run.save()
    TimelineEntry.objects.append(
        action_run.incident,
        action_run.actor,
        EntryKind.ACTION_SUCCEEDED,
        outcome.summary
        if outcome.changed or action_run.dry_run
        else f"No change needed: {outcome.summary}",
        {
            "action_run": action_run.pk,
            "action": action_run.action,
            "target": action_run.target,
            "changed": outcome.changed,
            "dry_run": action_run.dry_run,
            "outputs": outcome.outputs,
            "request_ids": request_ids,
        },
    )
    logger.info(
        "action.succeeded incident=%s action_run=%s action=%s changed=%s",
        action_run.incident.reference,
        action_run.pk,
        action_run.action,
        outcome.changed,
    )
    if not action_run.dry_run:
        _wake_steps(action_run)


def _wake_steps(action_run: ActionRun) -> None:
    waiting = RunStep.objects.filter(
        action_run=action_run, state__in=[StepState.QUEUED, StepState.RUNNING]
    ).values_list("pk", "run_id")
    for step_pk, run_pk in list(waiting):
        run = (
            PlaybookRun.objects.select_for_update()
            .select_related("incident", "playbook")
            .get(pk=run_pk)
        )
        step = RunStep.objects.select_for_update().get(pk=step_pk)
        _settle_step(run, step, action_run, advance=True)


def _record_error(
    taken: Taken, error: Exception, request_ids: list[str], *, undoing: bool = False
) -> str:
    code, message, transient = _classify(error)
    with transaction.atomic():
        state = ActionState.UNDOING if undoing else ActionState.RUNNING
        if not _still_mine(taken, state):
            return "taken over"
        action_run = (
            ActionRun.objects.select_for_update()
            .select_related("incident")
            .get(pk=taken.action_run.pk)
        )
        action_run.request_ids = [*action_run.request_ids, *request_ids]
        if transient and action_run.attempts < settings.PLAYBOOK_MAX_ATTEMPTS:
            action_run.state = ActionState.UNDOING if undoing else ActionState.QUEUED
            action_run.error_code, action_run.error_message = code, message
            action_run.save()
            backoff = min(300, 5 * 2 ** (action_run.attempts - 1))
            _dispatch(action_run, countdown=backoff)
            logger.warning(
                "action.retrying incident=%s action_run=%s error=%s in=%ss",
                action_run.incident.reference,
                action_run.pk,
                code,
                backoff,
            )
            return "retrying"
        action_run.error_code, action_run.error_message = code, message
        action_run.lease_expires_at = None
        if undoing:
            action_run.state = ActionState.SUCCEEDED  # still done; the undo did not happen
        else:
            action_run.state = ActionState.FAILED
            action_run.finished_at = timezone.now()
        action_run.save()
        TimelineEntry.objects.append(
            action_run.incident,
            action_run.actor,
            EntryKind.ACTION_FAILED,
            f"{'Undo of ' if undoing else ''}{action_run.action} on {action_run.target} "
            f"failed: {code}: {message}",
            {
                "action_run": action_run.pk,
                "action": action_run.action,
                "undo": undoing,
                "error_code": code,
                "error_message": message,
                "request_ids": request_ids,
            },
        )
        if not undoing:
            _wake_steps(action_run)
    logger.warning(
        "action.failed incident=%s action_run=%s action=%s error=%s",
        action_run.incident.reference,
        action_run.pk,
        action_run.action,
        code,
    )
    return "failed"


def _classify(error: Exception) -> tuple[str, str, bool]:
    """(code, message, worth trying again) for an error an action raised."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "ClientError")
        return code, str(details.get("Message") or error), code in TRANSIENT_ERROR_CODES
    if isinstance(error, ConnectionError | HTTPClientError):
        return type(error).__name__, str(error), True
    if isinstance(error, BotoCoreError):
        return type(error).__name__, str(error), False
    if isinstance(error, serializers.ValidationError | ValueError | LookupError):
        return type(error).__name__, str(error), False
    logger.exception("action.crashed")
    return type(error).__name__, str(error), False


def reconcile(now: datetime | None = None) -> list[int]:
    """Re-send what the broker lost: queued actions nobody took within
    PLAYBOOK_REDISPATCH_AFTER, and actions whose worker's lease ran out."""
    now = now or timezone.now()
    stale_queue = now - timedelta(seconds=settings.PLAYBOOK_REDISPATCH_AFTER)
    resent = []
    with transaction.atomic():
        candidates = ActionRun.objects.select_for_update(skip_locked=True).filter(
            state__in=IN_FLIGHT_ACTION_STATES
        )
        for action_run in candidates:
            lease = action_run.lease_expires_at
            if lease is not None:
                due = lease <= now
            else:
                due = action_run.dispatched_at is None or action_run.dispatched_at <= stale_queue
            if not due:
                continue
            action_run.dispatched_at = now
            action_run.save(update_fields=["dispatched_at"])
            send_task(action_run.pk, undo=action_run.state == ActionState.UNDOING)
            resent.append(action_run.pk)
    if resent:
        logger.warning("playbooks.reconciled action_runs=%s", resent)
    return resent
