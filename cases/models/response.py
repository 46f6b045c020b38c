from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from cases.choices import EntryKind, ObjectiveKind, ObjectiveStatus, ParticipantRole

if TYPE_CHECKING:
    from cases.models.incident import Incident


class TimelineKinds(NamedTuple):
    added: EntryKind
    updated: EntryKind
    removed: EntryKind


class IncidentPart(models.Model):
    """Something that belongs to one incident; adding, changing or removing it is recorded."""

    TIMELINE_KINDS: TimelineKinds
    if TYPE_CHECKING:
        incident: Incident
        incident_id: int

    class Meta:
        abstract = True


class Participant(IncidentPart):
    TIMELINE_KINDS = TimelineKinds(
        EntryKind.PARTICIPANT_ADDED, EntryKind.PARTICIPANT_UPDATED, EntryKind.PARTICIPANT_REMOVED
    )

    incident = models.ForeignKey(
        "cases.Incident", on_delete=models.CASCADE, related_name="participants"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="participations"
    )
    role = models.CharField(
        max_length=16, choices=ParticipantRole.choices, default=ParticipantRole.RESPONDER
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "user"], name="participant_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role}"


aws_account_id = RegexValidator(r"^\d{12}$", "An AWS account id is 12 digits.")


class AffectedResource(IncidentPart):
    TIMELINE_KINDS = TimelineKinds(
        EntryKind.RESOURCE_ADDED, EntryKind.RESOURCE_UPDATED, EntryKind.RESOURCE_REMOVED
    )

    incident = models.ForeignKey(
        "cases.Incident", on_delete=models.CASCADE, related_name="resources"
    )
    account_id = models.CharField("AWS account id", max_length=12, validators=[aws_account_id])
    region = models.CharField(max_length=32, blank=True)
    identifier = models.CharField(max_length=2048, help_text="ARN, or the resource's own id.")
    resource_type = models.CharField(max_length=128, help_text="For example AWS::EC2::Instance.")
    tags = models.JSONField(default=dict, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "id"]

    def __str__(self) -> str:
        return f"{self.resource_type} {self.identifier}"


class Objective(IncidentPart):
    """A response objective agreed with stakeholders: what must be true, by when."""

    TIMELINE_KINDS = TimelineKinds(
        EntryKind.OBJECTIVE_ADDED, EntryKind.OBJECTIVE_UPDATED, EntryKind.OBJECTIVE_REMOVED
    )

    incident = models.ForeignKey(
        "cases.Incident", on_delete=models.CASCADE, related_name="objectives"
    )
    kind = models.CharField(max_length=20, choices=ObjectiveKind.choices)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=ObjectiveStatus.choices, default=ObjectiveStatus.OPEN
    )
    met_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.description[:60]}".rstrip(": ")

    def save(self, *args: object, **kwargs: object) -> None:
        # met_at follows status, whoever changes it.
        if self.status == ObjectiveStatus.MET and not self.met_at:
            self.met_at = timezone.now()
        elif self.status != ObjectiveStatus.MET:
            self.met_at = None
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Task(IncidentPart):
    TIMELINE_KINDS = TimelineKinds(
        EntryKind.TASK_ADDED, EntryKind.TASK_UPDATED, EntryKind.TASK_REMOVED
    )

    incident = models.ForeignKey("cases.Incident", on_delete=models.CASCADE, related_name="tasks")
    objective = models.ForeignKey(
        Objective, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    title = models.CharField(max_length=300)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["done", "due_at", "id"]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: object, **kwargs: object) -> None:
        if self.done and not self.done_at:
            self.done_at = timezone.now()
        elif not self.done:
            self.done_at = None
        super().save(*args, **kwargs)  # type: ignore[arg-type]
