"""Cloud accounts, playbooks, their runs and steps, and response action runs.

The database is the record of work to do: a step is a row with an explicit state, and a
Celery task only ever carries a step's or an action run's id.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from cases.models import Incident
from irportal.actors import Actor, ActorKind
from playbooks.choices import (
    FINISHED_RUN_STATUSES,
    ActionState,
    Environment,
    OnFailure,
    RunStatus,
    StepState,
)

aws_account_id = RegexValidator(r"^\d{12}$", "An AWS account id is 12 digits.")
role_arn = RegexValidator(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+$", "Not an IAM role ARN.")
slug_like = RegexValidator(r"^[a-z0-9][a-z0-9-]*$", "Lower-case letters, digits and dashes.")


def _list() -> list[Any]:
    return []


def _dict() -> dict[str, Any]:
    return {}


class ActedBy(models.Model):
    """Who asked: a person, an integration, a rule, or a system component."""

    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_name = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True

    @property
    def actor(self) -> Actor:
        return Actor(kind=ActorKind(self.actor_kind), name=self.actor_name, user=self.actor_user)

    def set_actor(self, actor: Actor) -> None:
        self.actor_kind, self.actor_name, self.actor_user = actor.kind, actor.name, actor.user


class CloudAccount(models.Model):
    """An AWS account IR Portal can act in, and how it gets in: the response role."""

    account_id = models.CharField(max_length=12, unique=True, validators=[aws_account_id])
    name = models.CharField(max_length=100)
    environment = models.CharField(max_length=16, choices=Environment.choices)
    regions = models.JSONField(default=_list, blank=True, help_text="Regions in use.")
    role_arn = models.CharField(
        "response role ARN",
        max_length=2048,
        blank=True,
        validators=[role_arn],
        help_text="Assumed for every action. Empty: the deployment's own credentials.",
    )
    external_id = models.CharField(max_length=1224, blank=True)
    is_security_account = models.BooleanField(
        default=False, help_text="The central account evidence is copied to."
    )
    enabled = models.BooleanField(default=True)
    notes = models.TextField(blank=True)

    # The last access check (`check_accounts`): can IR Portal still assume the role?
    checked_at = models.DateTimeField(null=True, blank=True)
    check_ok = models.BooleanField(null=True, blank=True)
    check_message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name", "account_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_security_account"],
                condition=Q(is_security_account=True),
                name="one_security_account",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id})"


class PlaybookQuerySet(models.QuerySet["Playbook"]):
    def latest_versions(self) -> PlaybookQuerySet:
        """The newest version of each playbook."""
        newer = Playbook.objects.filter(
            slug=models.OuterRef("slug"), version__gt=models.OuterRef("version")
        )
        return self.filter(~models.Exists(newer))


class Playbook(models.Model):
    """One version of a playbook. Versions are never edited once a run has used them: a
    change makes the next version, so every run keeps the steps it was started with."""

    slug = models.CharField(max_length=80, validators=[slug_like])
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The steps and their options, as `playbooks.definitions` validates them.
    definition = models.JSONField()
    enabled = models.BooleanField(default=True)
    builtin = models.BooleanField(
        default=False, help_text="Loaded from playbooks/library/ by `load_playbooks`."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    objects = PlaybookQuerySet.as_manager()

    class Meta:
        ordering = ["slug", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["slug", "version"], name="playbook_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.definition.get("steps", []))


class PlaybookRun(ActedBy):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="playbook_runs")
    playbook = models.ForeignKey(Playbook, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    dry_run = models.BooleanField(default=False)
    rule = models.ForeignKey(
        "findings.TriageRule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The triage rule that started it, if one did.",
    )
    inputs = models.JSONField(
        default=_dict, blank=True, help_text="Values given at start, beside the incident's own."
    )
    context = models.JSONField(
        default=_dict, blank=True, help_text="What the parameters were drawn from, at start."
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.playbook.slug} on {self.incident.reference} (#{self.pk})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES


class ActionRun(ActedBy):
    """One response action on one target. Its idempotency key (incident, action, target,
    parameters, dry or not) is unique: asking for the same thing again finds this row."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="action_runs")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=2048)
    parameters = models.JSONField(default=_dict)
    idempotency_key = models.CharField(max_length=64, unique=True)
    dry_run = models.BooleanField(default=False)
    account = models.ForeignKey(
        CloudAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    region = models.CharField(max_length=32, blank=True)

    state = models.CharField(max_length=16, choices=ActionState.choices, default=ActionState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    # When the task was last sent, and until when a worker that took it holds it: the
    # reconciler re-sends an action whose task was lost or whose worker died.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    changed = models.BooleanField(
        null=True, blank=True, help_text="False when the target already was as asked."
    )
    before = models.JSONField(default=_dict, blank=True, help_text="State seen before acting.")
    outputs = models.JSONField(default=_dict, blank=True)
    request_ids = models.JSONField(default=_list, blank=True, help_text="AWS request ids.")
    error_code = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    undo_requested_by = models.CharField(max_length=150, blank=True)
    undo_requested_by_kind = models.CharField(max_length=16, choices=ActorKind.choices, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["state", "dispatched_at"],
                condition=Q(state__in=["queued", "running", "undoing"]),
                name="action_run_in_flight",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.target} (#{self.pk})"

    @property
    def undo_actor(self) -> Actor:
        return Actor(kind=ActorKind(self.undo_requested_by_kind), name=self.undo_requested_by)


class RunStep(models.Model):
    run = models.ForeignKey(PlaybookRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    key = models.CharField(max_length=64, help_text="The step's id in the playbook.")
    title = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    parameters = models.JSONField(
        default=_dict, help_text="Resolved from the incident and validated when the run started."
    )
    condition = models.JSONField(null=True, blank=True, help_text="The step's `when`.")
    requires_approval = models.BooleanField(default=False)
    on_failure = models.CharField(max_length=16, choices=OnFailure.choices, default=OnFailure.STOP)
    state = models.CharField(max_length=20, choices=StepState.choices, default=StepState.PENDING)
    reason = models.CharField(
        max_length=500, blank=True, help_text="Why it was skipped, rejected or failed."
    )
    action_run = models.ForeignKey(
        ActionRun, null=True, blank=True, on_delete=models.PROTECT, related_name="steps"
    )
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="step_position_once")
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"

    @property
    def incident(self) -> Incident:
        return self.run.incident


# What the engine waits on, for the pages and the API.
WAITING_STATES = (StepState.AWAITING_APPROVAL, StepState.QUEUED, StepState.RUNNING)
__all__ = [
    "WAITING_STATES",
    "ActionRun",
    "CloudAccount",
    "OnFailure",
    "Playbook",
    "PlaybookRun",
    "RunStatus",
    "RunStep",
    "StepState",
]
