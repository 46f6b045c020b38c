from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from cases.choices import Category, ObjectiveKind, Severity
from cases.models import Incident
from findings.choices import HAND_DECISIONS, SEVERITY_RANKS, Decision, RuleEffect, Source
from findings.models import NO_PLAYBOOK_ON_SUPPRESS, Finding, QuarantinedEvent, TriageRule

ACCOUNT_ID = re.compile(r"^\d{12}$")


class FindingSerializer(serializers.ModelSerializer):
    incident: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference", read_only=True
    )
    rule: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = Finding
        fields = [
            "id",
            "source",
            "provider_id",
            "type",
            "title",
            "description",
            "severity",
            "severity_score",
            "account_id",
            "region",
            "resources",
            "first_seen",
            "last_seen",
            "count",
            "revisions",
            "received_at",
            "updated_at",
            "decision",
            "decision_reason",
            "rule",
            "incident",
        ]


class FindingDetailSerializer(FindingSerializer):
    class Meta(FindingSerializer.Meta):
        fields = [*FindingSerializer.Meta.fields, "raw"]


class QuarantinedEventSerializer(serializers.ModelSerializer):
    resubmitted_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = QuarantinedEvent
        fields = [
            "id",
            "received_at",
            "received_by",
            "error",
            "payload",
            "resubmitted_at",
            "resubmitted_by",
        ]


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise serializers.ValidationError(f"Give a list of {what}.")
    return value


class TriageRuleSerializer(serializers.ModelSerializer):
    target_incident = serializers.SlugRelatedField(
        slug_field="reference", queryset=Incident.objects.all(), required=False, allow_null=True
    )
    commander = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        allow_null=True,
    )

    class Meta:
        model = TriageRule
        fields = [
            "id",
            "name",
            "description",
            "position",
            "enabled",
            "continue_matching",
            "sources",
            "type_patterns",
            "min_severity",
            "max_severity",
            "accounts",
            "regions",
            "resource_tags",
            "effect",
            "incident_severity",
            "incident_category",
            "commander",
            "restricted",
            "objectives",
            "target_incident",
            "suppress_reason",
            "expires_at",
            "playbook",
            "playbook_dry_run",
            "updated_at",
        ]

    def validate_sources(self, value: Any) -> list[str]:
        unknown = set(_strings(value, "sources")) - set(Source.values)
        if unknown:
            raise serializers.ValidationError(
                f"Unknown source {', '.join(sorted(unknown))}; known: {', '.join(Source.values)}."
            )
        return value

    def validate_type_patterns(self, value: Any) -> list[str]:
        return _strings(value, "finding type patterns such as 'Backdoor:EC2/*'")

    def validate_accounts(self, value: Any) -> list[str]:
        bad = [a for a in _strings(value, "account ids") if not ACCOUNT_ID.match(a)]
        if bad:
            raise serializers.ValidationError(f"An AWS account id is 12 digits: {', '.join(bad)}.")
        return value

    def validate_regions(self, value: Any) -> list[str]:
        return _strings(value, "regions")

    def validate_objectives(self, value: Any) -> list[str]:
        unknown = set(_strings(value, "objective kinds")) - set(ObjectiveKind.values)
        if unknown:
            raise serializers.ValidationError(
                f"Unknown objective {', '.join(sorted(unknown))}; "
                f"known: {', '.join(ObjectiveKind.values)}."
            )
        return value

    def validate_resource_tags(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise serializers.ValidationError("Give tags as an object of strings to strings.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        merged = {**self._current(), **attrs}
        low, high = merged.get("min_severity"), merged.get("max_severity")
        if low and high and SEVERITY_RANKS[low] > SEVERITY_RANKS[high]:
            raise serializers.ValidationError({"max_severity": "Lower than min_severity."})
        effect = merged.get("effect")
        if effect == RuleEffect.ATTACH and not merged.get("target_incident"):
            raise serializers.ValidationError(
                {"target_incident": "A rule that attaches names the incident."}
            )
        if effect == RuleEffect.SUPPRESS and not merged.get("suppress_reason"):
            raise serializers.ValidationError(
                {"suppress_reason": "Say why these findings are benign."}
            )
        if effect == RuleEffect.SUPPRESS and merged.get("playbook"):
            raise serializers.ValidationError({"playbook": NO_PLAYBOOK_ON_SUPPRESS})
        return attrs

    def to_representation(self, instance: TriageRule) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        # Every role reads rules, but a restricted incident is known only to those who may
        # see it: its reference is not shown to anyone else.
        target = instance.target_incident_id
        if target and target not in self._visible_targets():
            data["target_incident"] = None
        return data

    def _visible_targets(self) -> set[int]:
        """The named incidents the reader may see: one query for a whole list of rules."""
        root = self.root
        known: set[int] | None = getattr(root, "_visible_targets_cache", None)
        if known is None:
            rules = (self.parent.instance if self.parent is not None else None) or [self.instance]
            targets = {r.target_incident_id for r in rules if r and r.target_incident_id}
            visible = Incident.objects.filter(pk__in=targets)
            if request := self.context.get("request"):
                visible = visible & Incident.objects.visible_to(request.user)
            known = set(visible.values_list("pk", flat=True))
            root._visible_targets_cache = known  # type: ignore[attr-defined]
        return known

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        names = (
            "min_severity",
            "max_severity",
            "effect",
            "target_incident",
            "suppress_reason",
            "playbook",
        )
        return {name: getattr(self.instance, name) for name in names}


class RulePreviewSerializer(TriageRuleSerializer):
    """A rule as it would be saved, plus how many recent findings to try it on."""

    name = serializers.CharField(max_length=100, required=False, default="preview")
    limit = serializers.IntegerField(min_value=1, max_value=5000, default=500)

    class Meta(TriageRuleSerializer.Meta):
        fields = [*TriageRuleSerializer.Meta.fields, "limit"]


class HandTriageSerializer(serializers.Serializer):
    """A person's decision for a finding no rule took into an incident."""

    decision = serializers.ChoiceField(choices=HAND_DECISIONS)
    incident = serializers.SlugRelatedField(
        slug_field="reference", queryset=Incident.objects.none(), required=False
    )
    reason = serializers.CharField(required=False, default="", max_length=300)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False, default="")
    category = serializers.ChoiceField(choices=Category.choices, default=Category.OTHER)

    def get_fields(self) -> Any:
        # Only incidents the person can see: another's answers "does not exist".
        fields = super().get_fields()
        if request := self.context.get("request"):
            fields["incident"].queryset = Incident.objects.visible_to(request.user)  # type: ignore[attr-defined]
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["decision"] == Decision.ATTACHED and not attrs.get("incident"):
            raise serializers.ValidationError({"incident": "Name the incident to attach it to."})
        if attrs["decision"] == Decision.SUPPRESSED and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": "Say why this finding is benign."})
        return attrs
