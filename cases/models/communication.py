from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models, transaction
from django.template import Context, Engine
from django.utils import timezone

from cases.choices import Audience, Channel, CommunicationStatus, EntryKind
from cases.models.response import IncidentPart, TimelineKinds
from cases.models.timeline import TimelineEntry
from irportal.errors import StateConflict

if TYPE_CHECKING:
    from cases.models.incident import Incident
    from irportal.actors import Actor

# Messages are plain text: nothing in them is HTML-escaped.
_plain_text_templates = Engine(autoescape=False)


class CommunicationNotAllowed(StateConflict):
    """A step in a communication's life that its current state refuses."""


class CommunicationTemplate(models.Model):
    """A starting point for a message to one audience, written in Django template syntax.

    The incident is available as `incident`, for example `{{ incident.reference }}`.
    """

    name = models.CharField(max_length=100, unique=True)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["audience", "name"]

    def __str__(self) -> str:
        return self.name

    def render(self, incident: Incident) -> tuple[str, str]:
        context = Context({"incident": incident})
        subject = _plain_text_templates.from_string(self.subject).render(context)
        body = _plain_text_templates.from_string(self.body).render(context)
        return subject.strip(), body


class Communication(IncidentPart):
    """A message to stakeholders: drafted, approved by a lead, then marked sent."""

    TIMELINE_KINDS = TimelineKinds(
        EntryKind.COMMUNICATION_DRAFTED,
        EntryKind.COMMUNICATION_UPDATED,
        EntryKind.COMMUNICATION_REMOVED,
    )

    incident = models.ForeignKey(
        "cases.Incident", on_delete=models.CASCADE, related_name="communications"
    )
    audience = models.CharField(max_length=16, choices=Audience.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    template = models.ForeignKey(
        CommunicationTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16,
        choices=CommunicationStatus.choices,
        default=CommunicationStatus.DRAFT,
        editable=False,
    )
    drafted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    drafted_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["drafted_at", "id"]

    def __str__(self) -> str:
        return f"To {self.audience}: {self.subject}"

    def approve(self, actor: Actor) -> None:
        with transaction.atomic():
            self._lock()
            if self.status != CommunicationStatus.DRAFT:
                raise CommunicationNotAllowed(
                    f"only a draft can be approved; this is {self.status}"
                )
            self.status = CommunicationStatus.APPROVED
            self.approved_by, self.approved_at = actor.user, timezone.now()
            self.save(update_fields=["status", "approved_by", "approved_at"])
            self._record(actor, EntryKind.COMMUNICATION_APPROVED, "approved")

    def mark_sent(self, actor: Actor) -> None:
        with transaction.atomic():
            self._lock()
            if self.status != CommunicationStatus.APPROVED:
                raise CommunicationNotAllowed(
                    f"only an approved communication can be sent; this is {self.status}"
                )
            self.status = CommunicationStatus.SENT
            self.sent_by, self.sent_at = actor.user, timezone.now()
            self.save(update_fields=["status", "sent_by", "sent_at"])
            self._record(actor, EntryKind.COMMUNICATION_SENT, "sent")

    def _lock(self) -> None:
        self.status = (
            Communication.objects.select_for_update()
            .values_list("status", flat=True)
            .get(pk=self.pk)
        )

    def _record(self, actor: Actor, kind: EntryKind, verb: str) -> None:
        TimelineEntry.objects.append(
            self.incident,
            actor,
            kind,
            f"Communication to {self.audience} {verb}: {self.subject}",
            {"communication": self.pk, "audience": self.audience, "channel": self.channel},
        )
