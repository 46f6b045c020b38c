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
   it, and the next step of each run, whose task is sent after that commit. It does so only
   while the take is still its own (same state, same attempt, same lease): a worker whose
   lease ran out and whose action another worker took records nothing.
4. `reconcile` (periodic) re-sends queued actions no worker took in time and actions whose
   worker's lease ran out. Since actions look before they act, the second worker repeats
   no side effect the first one completed. An action that no worker finishes in
   PLAYBOOK_MAX_ATTEMPTS takes fails, as one that AWS throttles that often does.

Runs advance one step at a time. Every state change writes its timeline entry, naming who
(or which rule) asked, in the transaction that makes the change.

Every transaction here locks the incident's row before any run, step or action run of it
(appending to the timeline locks that row too). Work on one incident is therefore done one
transaction at a time, and two transactions never wait for each other's rows in opposite
orders (a deadlock on PostgreSQL).
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
from django.db.models import QuerySet
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
from playbooks.choices import ActionState, OnFailure, RunStatus, StepState
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

# Seconds before the task's next attempt: doubling from the first, up to the last.
RETRY_BACKOFF_FIRST = 5
RETRY_BACKOFF_LAST = 300

# Asking again for an action run in these states means trying it again.
_ASKING_AGAIN_RETRIES = (ActionState.FAILED, ActionState.UNDONE, ActionState.CANCELLED)
# Steps a cancelled run drops: none of them has started acting.
_NOT_STARTED = (StepState.PENDING, StepState.AWAITING_APPROVAL, StepState.QUEUED)
_WAITING_FOR_ACTION = (StepState.QUEUED, StepState.RUNNING)


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
    planned = [_plan_step(step, context) for step in playbook.steps]
    problems = {step["id"]: problem for step, problem in planned if problem}
    if problems:
        raise serializers.ValidationError({"steps": problems})

    with transaction.atomic():
        _lock_incident(incident.pk)
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


def _plan_step(step: dict[str, Any], context: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The step with its inputs resolved and validated, or the problem that stops it."""
    planned = {**step, "inputs": {}}
    # A stored definition can outlive an action (a module no longer loaded).
    try:
        action = actions.get(step["action"])
    except KeyError as error:
        return planned, {"action": str(error.args[0])}
    if not definitions.holds(step.get("when"), context):
        return planned, None
    try:
        raw = definitions.step_inputs(step, context)
    except definitions.Unresolvable as missing:
        return planned, {
            "parameters": f"the incident has no {missing}; give it as an input ({missing}=…)"
        }
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
        _lock_incident(incident.pk)
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
    """The action run for this key, and whether this call queued it: new, or asked for again
    after it failed, was undone or was cancelled (asking again then means trying again).

    A dry run is done at once, and again each time it is asked for: it calls no AWS, and
    each asking records what would be done. Called with the incident locked."""
    action = actions.get(action_name)
    target = action.target(inputs)
    key = _idempotency_key(incident, action.name, target, inputs, dry_run)
    existing = ActionRun.objects.select_for_update().filter(idempotency_key=key).first()
    if existing and not dry_run and existing.state not in _ASKING_AGAIN_RETRIES:
        return existing, False

    run = existing or ActionRun(
        incident=incident,
        action=action.name,
        target=target,
        parameters=inputs,
        idempotency_key=key,
        dry_run=dry_run,
        account=CloudAccount.objects.get(account_id=inputs["account_id"]),
        region=inputs["region"],
    )
    _arm(run, actor)
    TimelineEntry.objects.append(
        incident,
        actor,
        EntryKind.ACTION_REQUESTED,
        f"{'Dry run: ' if dry_run else ''}{action.describe(inputs)}",
        {"action_run": run.pk, "action": action.name, "target": target, "inputs": inputs},
    )
    if dry_run:
        would = action.describe(inputs)
        summary = f"Would {would[:1].lower()}{would[1:]}"
        _settle(run, Outcome(False, summary, outputs={"dry_run": True}), request_ids=[])
    else:
        _dispatch(run)
    return run, True


def _arm(action_run: ActionRun, actor: Actor) -> None:
    """Ready the action run for a fresh try by `actor`. An earlier try's outcome, errors and
    attempts are history, kept in the timeline: a retry gets its own budget of attempts."""
    action_run.set_actor(actor)
    action_run.state = ActionState.QUEUED
    action_run.attempts = 0
    action_run.changed = None
    action_run.before, action_run.outputs, action_run.request_ids = {}, {}, []
    action_run.error_code = action_run.error_message = ""
    action_run.started_at = action_run.finished_at = action_run.undone_at = None
    action_run.lease_expires_at = None
    action_run.undo_requested_by = action_run.undo_requested_by_kind = ""
    action_run.save()


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
# Locks: the incident's first, always (see the module's docstring)


def _lock_incident(incident_id: int) -> None:
    list(Incident.objects.select_for_update().filter(pk=incident_id).values_list("pk"))


def _lock_run(run: PlaybookRun) -> PlaybookRun:
    _lock_incident(run.incident_id)
    return _locked_run(run.pk)


def _locked_run(run_id: int) -> PlaybookRun:
    """The run, locked, with its incident and playbook read (not locked) beside it. The
    caller holds the incident's lock."""
    return (
        PlaybookRun.objects.select_for_update(of=("self",))
        .select_related("incident", "playbook")
        .get(pk=run_id)
    )


def _lock_step(step: RunStep) -> tuple[PlaybookRun, RunStep]:
    run = _lock_run(step.run)
    return run, RunStep.objects.select_for_update().get(pk=step.pk)


def _lock_action_run(action_run_id: int) -> ActionRun | None:
    """The action run, locked after its incident, with its incident and account read."""
    incident_id = (
        ActionRun.objects.filter(pk=action_run_id).values_list("incident_id", flat=True).first()
    )
    if incident_id is None:
        return None
    _lock_incident(incident_id)
    # `of`: the account is a nullable join, which PostgreSQL refuses to lock.
    return (
        ActionRun.objects.select_for_update(of=("self",))
        .select_related("incident", "account")
        .get(pk=action_run_id)
    )


# ---------------------------------------------------------------------------------------
# People deciding


def _may_approve(actor: Actor) -> bool:
    return actor.user is not None and roles.is_lead(actor.user)


def _check_awaiting(run: PlaybookRun, step: RunStep) -> None:
    if step.state != StepState.AWAITING_APPROVAL or run.finished:
        raise StateConflict(
            f"step {step.key} is {step.get_state_display().lower()}, not awaiting approval"
        )


def approve(actor: Actor, step: RunStep) -> RunStep:
    """Let a gated step act. The lead who approved it is who asks for its action."""
    if not _may_approve(actor):
        raise PermissionDenied("only a lead may approve a step")
    with transaction.atomic():
        run, step = _lock_step(step)
        _check_awaiting(run, step)
        step.decided_by, step.decided_at = actor.name, timezone.now()
        step.save(update_fields=["decided_by", "decided_at"])
        TimelineEntry.objects.append(
            run.incident,
            actor,
            EntryKind.STEP_APPROVED,
            f"Approved step {step.position + 1} of {run.playbook.name}: {step.title}",
            _step_data(step),
        )
        # Already done (the same action asked for before): the run goes on at once.
        if _enqueue(run, step, actor):
            _advance(run)
    return step


def reject(actor: Actor, step: RunStep, reason: str = "") -> RunStep:
    """Skip a gated step; the run goes on with the steps after it."""
    if not _may_approve(actor):
        raise PermissionDenied("only a lead may reject a step")
    with transaction.atomic():
        run, step = _lock_step(step)
        _check_awaiting(run, step)
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
        waiting = list(run.steps.select_for_update().filter(state__in=_NOT_STARTED))
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
    """An action still queued that no live step waits for is not done after all: the
    task, when it comes, finds it cancelled."""
    action_run = ActionRun.objects.select_for_update().get(pk=action_run_id)
    still_wanted = action_run.steps.filter(state__in=_WAITING_FOR_ACTION).exists()
    if action_run.state == ActionState.QUEUED and not still_wanted:
        action_run.state = ActionState.CANCELLED
        action_run.finished_at = timezone.now()
        action_run.save(update_fields=["state", "finished_at"])


def request_undo(actor: Actor, action_run: ActionRun) -> ActionRun:
    """Undo an action that succeeded and changed something; its steps become undone."""
    action = actions.get(action_run.action)
    if not action.undoable:
        raise StateConflict(f"{action.title} cannot be undone")
    with transaction.atomic():
        locked = _lock_action_run(action_run.pk)
        assert locked is not None  # action runs are never deleted (steps protect them)
        action_run = locked
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
        # The undo gets its own budget of attempts, and no error of an earlier try.
        action_run.attempts = 0
        action_run.error_code = action_run.error_message = ""
        action_run.save()
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
            _await_approval(run, step)
            return
        if not _enqueue(run, step):
            return
    _finish(run)


def _await_approval(run: PlaybookRun, step: RunStep) -> None:
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


def _enqueue(run: PlaybookRun, step: RunStep, actor: Actor | None = None) -> bool:
    """Hand the step to its action run, asked for by `actor` (the run's own by default).
    True when the step is settled already and the run can go on at once: a dry run, or
    the same action done earlier."""
    actor = actor or run.actor
    action_run, new = _get_or_queue(
        actor, run.incident, step.action, step.parameters, dry_run=run.dry_run
    )
    step.action_run = action_run
    step.started_at = step.started_at or timezone.now()
    step.state = StepState.RUNNING if action_run.state == ActionState.RUNNING else StepState.QUEUED
    step.save(update_fields=["action_run", "started_at", "state"])
    if run.status != RunStatus.RUNNING:
        run.status = RunStatus.RUNNING
        run.save(update_fields=["status"])
    if action_run.state in (ActionState.QUEUED, ActionState.RUNNING):
        return False
    if not new:
        _note_step_outcome(actor, run, step, action_run, shared=False)
    _settle_step(run, step, action_run, advance=False)
    return step.state == StepState.SUCCEEDED or step.on_failure == OnFailure.CONTINUE


def _note_step_outcome(
    actor: Actor, run: PlaybookRun, step: RunStep, action_run: ActionRun, *, shared: bool
) -> None:
    """A step records its own outcome when its action run's entry does not speak for it:
    the action was done earlier (or is being undone), or it settles steps of other runs
    too (`shared`)."""
    where = f"Step {step.position + 1} of {run.playbook.name}"
    done = action_run.outputs.get("summary", step.title)
    if action_run.state == ActionState.SUCCEEDED:
        kind = EntryKind.ACTION_SUCCEEDED
        outcome = f"done by the action it shares ({done})" if shared else f"already done ({done})"
    elif action_run.state == ActionState.UNDOING:
        kind, outcome = EntryKind.ACTION_FAILED, "not done, the same action is being undone"
    else:
        kind = EntryKind.ACTION_FAILED
        error = f"{action_run.error_code}: {action_run.error_message}"
        outcome = f"failed with the action it shares ({error})"
    data = {**_step_data(step), "action_run": action_run.pk}
    data["shared" if shared else "done_before"] = True
    TimelineEntry.objects.append(run.incident, actor, kind, f"{where}: {outcome}", data)


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
        run.steps.filter(state=StepState.PENDING).update(
            state=StepState.CANCELLED, reason=f"step {failed_step.key} failed", finished_at=now
        )
    failed = failed_step is not None or run.steps.filter(state=StepState.FAILED).exists()
    run.status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
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
    """Carry a settled action run's result onto a step waiting for it; a failure that
    stops the run finishes it, and with `advance` the run otherwise goes on."""
    succeeded = action_run.state == ActionState.SUCCEEDED
    step.state = StepState.SUCCEEDED if succeeded else StepState.FAILED
    step.reason = "" if succeeded else f"{action_run.error_code}: {action_run.error_message}"[:500]
    if action_run.state == ActionState.CANCELLED:
        step.state, step.reason = StepState.CANCELLED, "its action was cancelled"
    elif action_run.state == ActionState.UNDOING:
        step.reason = "the same action is being undone; start it again once that is done"
    step.finished_at = timezone.now()
    step.save(update_fields=["state", "reason", "finished_at"])

    if run.finished:
        return
    if step.state == StepState.FAILED and step.on_failure == OnFailure.STOP:
        _finish(run, failed_step=step)
    elif advance:
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
    """One worker's hold on an action run. The attempt and the lease it was given identify
    this take: the worker may record an outcome only while both are still the row's."""

    action_run: ActionRun
    attempt: int
    lease_expires_at: datetime


def execute(action_run_id: int) -> str:
    """Do one queued action (the task's body); returns what became of it, for logs."""
    taken = _take(action_run_id, ActionState.QUEUED, ActionState.RUNNING)
    if taken is None:
        return "not mine"
    request_ids: list[str] = []  # kept even when the action fails half-way
    try:
        outcome = _apply(taken.action_run, request_ids)
    except Exception as error:
        return _record_error(taken, error, request_ids)
    with transaction.atomic():
        action_run = _still_mine(taken, ActionState.RUNNING)
        if action_run is None:
            return "taken over"
        _settle(action_run, outcome, request_ids)
    return "succeeded"


def _apply(action_run: ActionRun, request_ids: list[str]) -> Outcome:
    """Look, then act. What the first attempt saw is kept before it acts: a later attempt
    (its worker died after AWS answered) sees the target already changed, and needs the
    first sight to say what changed and to keep the action undoable."""
    action = actions.get(action_run.action)
    context = _aws_context(action_run, request_ids, asked_by=action_run.actor_name)
    state = action.inspect(context, action_run.parameters)
    if action_run.before:
        context.first_seen = action_run.before
    else:
        ActionRun.objects.filter(pk=action_run.pk, attempts=action_run.attempts).update(
            before=state
        )
    return action.apply(context, action_run.parameters, state)


def undo(action_run_id: int) -> str:
    """Undo one succeeded action (the undo task's body)."""
    taken = _take(action_run_id, ActionState.UNDOING, ActionState.UNDOING)
    if taken is None:
        return "not mine"
    request_ids: list[str] = []
    try:
        outcome = _unapply(taken.action_run, request_ids)
    except Exception as error:
        return _record_error(taken, error, request_ids, undoing=True)
    with transaction.atomic():
        action_run = _still_mine(taken, ActionState.UNDOING)
        if action_run is None:
            return "taken over"
        _record_undone(action_run, outcome, request_ids)
    return "undone"


def _unapply(action_run: ActionRun, request_ids: list[str]) -> Outcome:
    action = actions.get(action_run.action)
    # The account's CloudTrail names whoever asked for the undo, not who asked for the action.
    context = _aws_context(action_run, request_ids, asked_by=action_run.undo_requested_by)
    done = Outcome(
        changed=bool(action_run.changed),
        summary=str(action_run.outputs.get("summary", "")),
        before=action_run.before,
        outputs=action_run.outputs,
    )
    return action.undo(context, action_run.parameters, done)


def _record_undone(action_run: ActionRun, outcome: Outcome, request_ids: list[str]) -> None:
    action_run.state = ActionState.UNDONE
    action_run.undone_at = timezone.now()
    action_run.request_ids = [*action_run.request_ids, *request_ids]
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
            "request_ids": request_ids,
        },
    )
    logger.info(
        "action.undone incident=%s action_run=%s action=%s",
        action_run.incident.reference,
        action_run.pk,
        action_run.action,
    )


def _take(action_run_id: int, ready: str, taking: str) -> Taken | None:
    """Claim an action run for this worker: it is `ready`, or it is `taking` and its last
    worker's lease ran out. Committed before any AWS call, so a crash leaves a lease that
    runs out and a row the reconciler sends again."""
    now = timezone.now()
    with transaction.atomic():
        action_run = _lock_action_run(action_run_id)
        if action_run is None or not _free(action_run, (ready, taking), now):
            return None
        if _abandoned(action_run, now) and action_run.attempts >= settings.PLAYBOOK_MAX_ATTEMPTS:
            message = f"no worker finished it in {action_run.attempts} attempts"
            _give_up(action_run, "WorkerLost", message, [], undoing=taking == ActionState.UNDOING)
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
    return Taken(action_run, action_run.attempts, action_run.lease_expires_at)


def _free(action_run: ActionRun, states: tuple[str, str], now: datetime) -> bool:
    """In one of `states`, and held by no worker whose lease still runs."""
    lease = action_run.lease_expires_at
    return action_run.state in states and (lease is None or lease <= now)


def _abandoned(action_run: ActionRun, now: datetime) -> bool:
    """A worker took it and its lease ran out: that worker died or hung."""
    lease = action_run.lease_expires_at
    return lease is not None and lease <= now


def _still_mine(taken: Taken, state: str) -> ActionRun | None:
    """The action run, locked, while this worker's take is still its latest."""
    current = _lock_action_run(taken.action_run.pk)
    if (
        current is None
        or current.state != state
        or current.attempts != taken.attempt
        or current.lease_expires_at != taken.lease_expires_at
    ):
        logger.warning(
            "action.superseded action_run=%s attempt=%s", taken.action_run.pk, taken.attempt
        )
        return None
    return current


def _aws_context(action_run: ActionRun, request_ids: list[str], *, asked_by: str) -> AwsContext:
    """Clients in the action's account, under a session named for the incident and
    `asked_by`, noting request ids into `request_ids`."""
    reference = action_run.incident.reference
    account = action_run.account
    assert account is not None
    # Disabled after the action was asked for (a gate waited, a retry backed off).
    if not account.enabled:
        raise PermissionDenied(f"account {account.account_id} is disabled")
    session = session_for(account, session_name(reference, asked_by))
    context = AwsContext(
        session, action_run.region, incident_reference=reference, action_run_id=action_run.pk
    )
    context.request_ids = request_ids
    context.response_role = account.role_arn.rsplit("/", 1)[-1] if account.role_arn else ""
    return context


def _settle(action_run: ActionRun, outcome: Outcome, request_ids: list[str]) -> None:
    """Record a finished action and move on every run that waited for it."""
    now = timezone.now()
    action_run.state = ActionState.SUCCEEDED
    action_run.changed = outcome.changed
    action_run.before = outcome.before
    action_run.outputs = {**outcome.outputs, "summary": outcome.summary}
    action_run.request_ids = [*action_run.request_ids, *request_ids]
    # An earlier attempt's transient error is not this outcome's.
    action_run.error_code = action_run.error_message = ""
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
            "steps": _waiting_steps(action_run),
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


def _waiting_for(action_run: ActionRun) -> QuerySet[RunStep]:
    """The steps, of any run, that wait for this action run: what its outcome settles."""
    waiting = RunStep.objects.filter(action_run=action_run, state__in=_WAITING_FOR_ACTION)
    return waiting.order_by("pk")  # runs in the order they were started


def _waiting_steps(action_run: ActionRun) -> list[dict[str, Any]]:
    waiting = _waiting_for(action_run).values_list("run_id", "key", "position")
    return [{"run": run, "step": key, "position": position} for run, key, position in waiting]


def _wake_steps(action_run: ActionRun) -> None:
    """Settle every step, of any run, that waits for this action run. The caller holds the
    incident's lock."""
    waiting = list(_waiting_for(action_run).values_list("pk", "run_id"))
    for step_pk, run_pk in waiting:
        run = _locked_run(run_pk)
        step = RunStep.objects.select_for_update().get(pk=step_pk)
        # The action's entry speaks for its one step; steps sharing it speak for themselves,
        # each in the name of whoever started its run (an approving lead has the approval's).
        if len(waiting) > 1:
            _note_step_outcome(run.actor, run, step, action_run, shared=True)
        _settle_step(run, step, action_run, advance=True)


def _record_error(
    taken: Taken, error: Exception, request_ids: list[str], *, undoing: bool = False
) -> str:
    """Try again later after a transient error while attempts remain; otherwise fail."""
    code, message, transient = _classify(error)
    state = ActionState.UNDOING if undoing else ActionState.RUNNING
    with transaction.atomic():
        action_run = _still_mine(taken, state)
        if action_run is None:
            return "taken over"
        if transient and action_run.attempts < settings.PLAYBOOK_MAX_ATTEMPTS:
            action_run.state = ActionState.UNDOING if undoing else ActionState.QUEUED
            action_run.error_code, action_run.error_message = code, message
            action_run.request_ids = [*action_run.request_ids, *request_ids]
            action_run.save()
            backoff = _backoff(action_run.attempts)
            _dispatch(action_run, countdown=backoff)
            logger.warning(
                "action.retrying incident=%s action_run=%s error=%s in=%ss",
                action_run.incident.reference,
                action_run.pk,
                code,
                backoff,
            )
            return "retrying"
        _give_up(action_run, code, message, request_ids, undoing=undoing)
    return "failed"


def _backoff(attempts: int) -> int:
    return min(RETRY_BACKOFF_LAST, RETRY_BACKOFF_FIRST * 2 ** (attempts - 1))


def _give_up(
    action_run: ActionRun, code: str, message: str, request_ids: list[str], *, undoing: bool
) -> None:
    """Record that the action (or its undo) failed for good, and settle the steps that
    waited for it. A failed undo leaves the action as it was: succeeded."""
    action_run.error_code, action_run.error_message = code, message
    action_run.request_ids = [*action_run.request_ids, *request_ids]
    action_run.lease_expires_at = None
    if undoing:
        action_run.state = ActionState.SUCCEEDED
    else:
        action_run.state = ActionState.FAILED
        action_run.finished_at = timezone.now()
    action_run.save()
    TimelineEntry.objects.append(
        action_run.incident,
        action_run.undo_actor if undoing else action_run.actor,
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
            "steps": [] if undoing else _waiting_steps(action_run),
        },
    )
    if not undoing:
        _wake_steps(action_run)
    logger.warning(
        "action.failed incident=%s action_run=%s action=%s undo=%s error=%s",
        action_run.incident.reference,
        action_run.pk,
        action_run.action,
        undoing,
        code,
    )


def _classify(error: Exception) -> tuple[str, str, bool]:
    """(code, message, worth trying again) for an error an action raised."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "ClientError")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        # Codes differ by service; an answer of 429 or 5xx is transient whatever its code.
        transient = code in TRANSIENT_ERROR_CODES or status == 429 or status >= 500
        return code, str(details.get("Message") or error), transient
    if isinstance(error, ConnectionError | HTTPClientError):
        return type(error).__name__, str(error), True
    if isinstance(error, BotoCoreError):
        return type(error).__name__, str(error), False
    if isinstance(error, serializers.ValidationError | ValueError | LookupError | PermissionDenied):
        return type(error).__name__, str(error), False
    logger.exception("action.crashed")
    return type(error).__name__, str(error), False


def reconcile(now: datetime | None = None) -> list[int]:
    """Re-send what the broker lost: queued actions nobody took within
    PLAYBOOK_REDISPATCH_AFTER, and actions whose worker's lease ran out."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.PLAYBOOK_REDISPATCH_AFTER)
    resent = []
    with transaction.atomic():
        # Rows a worker holds locked right now are being taken or settled: not lost.
        candidates = ActionRun.objects.select_for_update(skip_locked=True).filter(
            state__in=[ActionState.QUEUED, ActionState.RUNNING, ActionState.UNDOING]
        )
        for action_run in candidates:
            if not _lost(action_run, now, stale):
                continue
            action_run.dispatched_at = now
            action_run.save(update_fields=["dispatched_at"])
            send_task(action_run.pk, undo=action_run.state == ActionState.UNDOING)
            resent.append(action_run.pk)
    if resent:
        logger.warning("playbooks.reconciled action_runs=%s", resent)
    return resent


def _lost(action_run: ActionRun, now: datetime, stale: datetime) -> bool:
    """Whether its task has to be sent again: no live lease, and either its last sending
    is older than `stale` or its worker's lease ran out since that sending."""
    lease, sent = action_run.lease_expires_at, action_run.dispatched_at
    if lease is not None and lease > now:
        return False
    if sent is None or sent <= stale:
        return True
    return lease is not None and sent < lease
