from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from cases.choices import TLP, Category, EntryKind, ParticipantRole, Resolution, Severity, Status
from cases.models.response import Participant
from cases.models.timeline import TimelineEntry
from irportal import roles
from irportal.errors import StateConflict

if TYPE_CHECKING:
    from irportal.actors import Actor

# Where an incident may go from each status. Closing is possible from every open status,
# but only as `resolved` once it has recovered (see `_check_resolution`).
NEXT_STATUSES: dict[str, tuple[str, ...]] = {
    Status.DETECTED: (Status.TRIAGED, Status.CONTAINED, Status.CLOSED),
    Status.TRIAGED: (Status.CONTAINED, Status.CLOSED),
    Status.CONTAINED: (Status.ERADICATED, Status.RECOVERED, Status.TRIAGED, Status.CLOSED),
    Status.ERADICATED: (Status.RECOVERED, Status.CLOSED),
    Status.RECOVERED: (Status.CLOSED,),
    Status.CLOSED: (Status.TRIAGED,),
}

# The timestamp each status sets when the incident enters it.
STATUS_TIMESTAMPS = {
    Status.CONTAINED: "contained_at",
    Status.ERADICATED: "eradicated_at",
    Status.RECOVERED: "recovered_at",
    Status.CLOSED: "closed_at",
}


class TransitionNotAllowed(StateConflict):
    """A status change the incident's lifecycle refuses; the message says why."""


class IncidentQuerySet(models.QuerySet["Incident"]):
    def visible_to(self, user: Any) -> IncidentQuerySet:
        """The incidents `user` may know exist. Every page, API view and export uses this.

        Leads and superusers see everything. Responders, leadership and integrations see
        every incident that is not restricted. Anyone sees the incidents they take part in.
        """
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if roles.is_lead(user):
            return self.all()

        # `id IN (one list)`, not a correlated EXISTS: PostgreSQL hashes the list once,
        # where OR EXISTS made it probe per row and cost 5x more on 100k incidents.
        takes_part = Q(pk__in=Participant.objects.filter(user=user).values("incident_id"))
        if roles.roles_of(user) & {roles.RESPONDER, roles.LEADERSHIP, roles.INTEGRATION}:
            return self.filter(Q(restricted=False) | takes_part)
        return self.filter(takes_part)


class Incident(models.Model):
    """One security incident, from detection to closure.

    Durations the response is measured by:
    - time to detect: from the earliest sign of the activity (`detected_at`, the first-seen
      time of its earliest finding) to the incident being reported (`reported_at`);
    - time to acknowledge: from report to a responder taking it on;
    - time to contain and time to recover: from `detected_at`, since the damage runs from
      the start of the activity, not from when someone noticed.
    """

    reference = models.CharField(max_length=20, unique=True, editable=False)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.SEV3)
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.OTHER)
    tlp = models.CharField("TLP", max_length=16, choices=TLP.choices, default=TLP.AMBER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DETECTED)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    restricted = models.BooleanField(
        default=False, help_text="Only participants, leads and superusers know it exists."
    )

    detected_at = models.DateTimeField(default=timezone.now)
    reported_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    contained_at = models.DateTimeField(null=True, blank=True)
    eradicated_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    acknowledgement_missed_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-reported_at", "-id"]
        indexes = [
            models.Index(fields=["-reported_at", "-id"], name="incident_newest_first"),
            models.Index(fields=["status", "severity"], name="incident_status_severity"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status != Status.CLOSED

    @property
    def time_to_detect(self) -> timedelta | None:
        return self.reported_at - self.detected_at

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return self.acknowledged_at - self.reported_at if self.acknowledged_at else None

    @property
    def time_to_contain(self) -> timedelta | None:
        return self.contained_at - self.detected_at if self.contained_at else None

    @property
    def time_to_recover(self) -> timedelta | None:
        return self.recovered_at - self.detected_at if self.recovered_at else None

    def may_change(self, user: Any) -> bool:
        """Whether `user`, who can see this incident, may change it or anything under it.

        Leads and the working roles may; leadership reads only. Someone with no role works
        on the incidents they take part in, unless they take part as an observer.
        """
        if roles.is_lead(user):
            return True
        held = roles.roles_of(user)
        if held & roles.WORKING:
            return True
        if roles.LEADERSHIP in held:
            return False
        return (
            Participant.objects.filter(incident=self, user=user)
            .exclude(role=ParticipantRole.OBSERVER)
            .exists()
        )

    def acknowledge(self, actor: Actor, at: datetime | None = None) -> bool:
        """Record that a responder has taken the incident on; False if it already was."""
        with transaction.atomic():
            self._lock()
            if self.acknowledged_at:
                return False
            self.acknowledged_at = at or timezone.now()
            self.save(update_fields=["acknowledged_at", "updated_at"])
            TimelineEntry.objects.append(
                self,
                actor,
                EntryKind.INCIDENT_ACKNOWLEDGED,
                f"Acknowledged by {actor.name}",
                occurred_at=self.acknowledged_at,
            )
        return True

    def move_to(
        self,
        actor: Actor,
        status: str,
        *,
        resolution: str = "",
        reason: str = "",
        at: datetime | None = None,
    ) -> None:
        """Change the status, set the timestamp that goes with it, and write the timeline.

        `at` is when it really happened, for a change recorded after the fact.
        Raises TransitionNotAllowed, with the reason, for a change the lifecycle refuses.
        """
        with transaction.atomic():
            self._lock()
            self._check_transition(status, resolution, at)
            previous = self.status
            at = at or timezone.now()

            self.status = status
            changed = ["status", "resolution", "updated_at"]
            if status == Status.TRIAGED and not self.acknowledged_at:
                self.acknowledged_at = at
                changed.append("acknowledged_at")
            if timestamp_field := STATUS_TIMESTAMPS.get(Status(status)):
                setattr(self, timestamp_field, at)
                changed.append(timestamp_field)
            if status == Status.CLOSED:
                self.resolution = resolution
            elif previous == Status.CLOSED:
                # Reopened: it is no longer closed, nor resolved.
                self.closed_at = None
                self.resolution = ""
                changed.append("closed_at")
            self.save(update_fields=changed)

            summary = f"Status {previous} → {status}"
            if resolution:
                summary += f" ({resolution})"
            TimelineEntry.objects.append(
                self,
                actor,
                EntryKind.INCIDENT_STATUS_CHANGED,
                summary,
                {"from": previous, "to": status, "resolution": resolution, "reason": reason},
                occurred_at=at,
            )

    def _check_transition(self, status: str, resolution: str, at: datetime | None) -> None:
        if status not in Status.values:
            raise TransitionNotAllowed(f"'{status}' is not a status")
        if status == self.status:
            raise TransitionNotAllowed(f"{self.reference} is already {status}")
        if status not in NEXT_STATUSES[Status(self.status)]:
            allowed = ", ".join(NEXT_STATUSES[Status(self.status)])
            raise TransitionNotAllowed(
                f"{self.reference} cannot go from {self.status} to {status}; "
                f"from {self.status} it can go to: {allowed}"
            )
        self._check_resolution(status, resolution)
        if at and at > timezone.now():
            raise TransitionNotAllowed("a status change cannot be dated in the future")
        if at and at < self.detected_at:
            raise TransitionNotAllowed("a status change cannot be dated before detection")

    def _check_resolution(self, status: str, resolution: str) -> None:
        if status != Status.CLOSED:
            if resolution:
                raise TransitionNotAllowed("a resolution is given only when closing")
            return
        if resolution not in Resolution.values:
            choices = ", ".join(Resolution.values)
            raise TransitionNotAllowed(f"closing needs a resolution, one of: {choices}")
        if resolution == Resolution.RESOLVED and self.status != Status.RECOVERED:
            raise TransitionNotAllowed(
                "an incident is closed as resolved only once recovered; "
                "close it as false_positive, benign or duplicate otherwise"
            )

    def _lock(self) -> None:
        """Lock the row and re-read the lifecycle fields another request may have moved."""
        fresh = Incident.objects.select_for_update().get(pk=self.pk)
        for field in ("status", "resolution", "acknowledged_at", "closed_at"):
            setattr(self, field, getattr(fresh, field))


class ReferenceCounter(models.Model):
    """The last incident number handed out in a year: references are never reused."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"
