from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cases.choices import MANUAL_ENTRY_KINDS, Resolution, Status
from cases.models import (
    AffectedResource,
    Communication,
    CommunicationTemplate,
    Incident,
    Objective,
    Participant,
    Task,
    TimelineEntry,
)
from irportal import roles
from irportal.api import ModelSerializer

User = get_user_model()

# Clocks drift: a time a few minutes ahead of ours is still accepted as "now".
CLOCK_SKEW = timedelta(minutes=5)


def username_field(**kwargs: Any) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), **kwargs
    )


def not_in_future(value: Any) -> Any:
    if value and value > timezone.now() + CLOCK_SKEW:
        raise serializers.ValidationError("This time is in the future.")
    return value


@extend_schema_field({"type": "number", "format": "double", "nullable": True})
class SecondsField(serializers.ReadOnlyField):
    """A duration, as seconds, read from a model property."""

    def to_representation(self, value: timedelta | None) -> float | None:
        return value.total_seconds() if value is not None else None


class IncidentSerializer(ModelSerializer):
    detected_at = serializers.DateTimeField(required=False, validators=[not_in_future])
    reported_at = serializers.DateTimeField(required=False, validators=[not_in_future])
    time_to_detect = SecondsField(help_text="Seconds from detected_at to reported_at.")
    time_to_acknowledge = SecondsField(help_text="Seconds from reported_at to acknowledged_at.")
    time_to_contain = SecondsField(help_text="Seconds from detected_at to contained_at.")
    time_to_recover = SecondsField(help_text="Seconds from detected_at to recovered_at.")

    class Meta:
        model = Incident
        fields = [
            "reference",
            "title",
            "summary",
            "severity",
            "category",
            "tlp",
            "status",
            "resolution",
            "restricted",
            "detected_at",
            "reported_at",
            "acknowledged_at",
            "contained_at",
            "eradicated_at",
            "recovered_at",
            "closed_at",
            "acknowledgement_missed_at",
            "time_to_detect",
            "time_to_acknowledge",
            "time_to_contain",
            "time_to_recover",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "resolution",
            "acknowledged_at",
            "contained_at",
            "eradicated_at",
            "recovered_at",
            "closed_at",
            "acknowledgement_missed_at",
            "created_at",
            "updated_at",
        ]

    def validate_restricted(self, value: bool) -> bool:
        # Anyone working an incident may restrict it; only a lead may open it up again,
        # since that shows it to everyone.
        lifting = self.instance and self.instance.restricted and not value
        if lifting and not roles.is_lead(self.context["request"].user):
            raise serializers.ValidationError("Only a lead can lift a restriction.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        detected = attrs.get("detected_at", getattr(self.instance, "detected_at", None))
        reported = attrs.get("reported_at", getattr(self.instance, "reported_at", None))
        if detected and reported and detected > reported:
            raise serializers.ValidationError(
                {"detected_at": "An incident cannot be detected after it was reported."}
            )
        return attrs


class TransitionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices)
    resolution = serializers.ChoiceField(choices=Resolution.choices, required=False, default="")
    reason = serializers.CharField(required=False, default="", max_length=2000)
    at = serializers.DateTimeField(
        required=False, default=None, help_text="When it happened, if earlier than now."
    )


class ParticipantSerializer(ModelSerializer):
    user = username_field()

    class Meta:
        model = Participant
        fields = ["id", "user", "role", "added_at"]

    def validate_user(self, user: Any) -> Any:
        incident = self.context["incident"]
        taken = Participant.objects.filter(incident=incident, user=user)
        if self.instance:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError(f"{user} already takes part in {incident.reference}.")
        return user


class AffectedResourceSerializer(ModelSerializer):
    tags = serializers.DictField(child=serializers.CharField(max_length=256), required=False)

    class Meta:
        model = AffectedResource
        fields = ["id", "account_id", "region", "identifier", "resource_type", "tags", "added_at"]


class ObjectiveSerializer(ModelSerializer):
    owner = username_field(required=False, allow_null=True)

    class Meta:
        model = Objective
        fields = ["id", "kind", "description", "owner", "due_at", "status", "met_at", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("kind") == "other" and not attrs.get("description"):
            raise serializers.ValidationError(
                {"description": "Describe an objective of kind 'other'."}
            )
        return attrs


class TaskSerializer(ModelSerializer):
    assignee = username_field(required=False, allow_null=True)
    objective = serializers.PrimaryKeyRelatedField(
        queryset=Objective.objects.none(), required=False, allow_null=True
    )

    class Meta:
        model = Task
        fields = ["id", "title", "objective", "assignee", "due_at", "done", "done_at", "created_at"]

    def get_fields(self) -> Any:
        # Only this incident's objectives: another incident's answer "does not exist", like
        # an id nobody has, so that a task cannot reveal what a hidden incident contains.
        fields = super().get_fields()
        if incident := self.context.get("incident"):
            fields["objective"].queryset = Objective.objects.filter(incident=incident)  # type: ignore[attr-defined]
        return fields


class CommunicationSerializer(ModelSerializer):
    drafted_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    approved_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    sent_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    template = serializers.PrimaryKeyRelatedField(
        queryset=CommunicationTemplate.objects.filter(active=True), required=False, allow_null=True
    )

    class Meta:
        model = Communication
        fields = [
            "id",
            "audience",
            "channel",
            "subject",
            "body",
            "template",
            "status",
            "drafted_by",
            "drafted_at",
            "approved_by",
            "approved_at",
            "sent_by",
            "sent_at",
        ]
        read_only_fields = ["status", "approved_at", "sent_at"]
        extra_kwargs = {
            "audience": {"required": False},
            "channel": {"required": False},
            "subject": {"required": False},
            "body": {"required": False},
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A template fills in whatever the draft leaves out."""
        template = attrs.get("template")
        if template and not self.instance:
            subject, body = template.render(self.context["incident"])
            attrs.setdefault("audience", template.audience)
            attrs.setdefault("channel", template.channel)
            attrs.setdefault("subject", subject)
            attrs.setdefault("body", body)
        if not self.instance:
            missing = {
                name: "This field is required unless a template provides it."
                for name in ("audience", "subject", "body")
                if not attrs.get(name)
            }
            if missing:
                raise serializers.ValidationError(missing)
        return attrs


class TimelineEntrySerializer(ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = TimelineEntry
        fields = [
            "sequence",
            "recorded_at",
            "occurred_at",
            "actor",
            "kind",
            "summary",
            "data",
            "previous_hash",
            "hash",
        ]

    def get_actor(self, entry: TimelineEntry) -> dict[str, str]:
        return {"kind": entry.actor_kind, "name": entry.actor_name}


class TimelineNoteSerializer(serializers.Serializer):
    """What a person writes into the timeline: a note or a decision."""

    kind = serializers.ChoiceField(choices=[(k.value, k.label) for k in MANUAL_ENTRY_KINDS])
    summary = serializers.CharField(max_length=300)
    # The metaclass takes declared fields off the class, so this does not hide `.data`.
    data = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]
    occurred_at = serializers.DateTimeField(
        required=False, default=None, validators=[not_in_future]
    )


class CommunicationTemplateSerializer(ModelSerializer):
    class Meta:
        model = CommunicationTemplate
        fields = ["id", "name", "audience", "channel", "subject", "body"]
