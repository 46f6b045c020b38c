from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from evidence.choices import EvidenceKind
from evidence.models import CustodyEvent, EvidenceItem


def known_retention_class(value: str) -> str:
    if value not in settings.EVIDENCE_RETENTION_CLASSES:
        known = ", ".join(settings.EVIDENCE_RETENTION_CLASSES)
        raise serializers.ValidationError(f"one of {known}")
    return value


class EvidenceItemSerializer(serializers.ModelSerializer[EvidenceItem]):
    location = serializers.CharField(read_only=True)

    class Meta:
        model = EvidenceItem
        fields = [
            "id",
            "kind",
            "name",
            "description",
            "source",
            "acquired_at",
            "acquired_by",
            "acquired_by_kind",
            "action_run",
            "store",
            "location",
            "bucket",
            "key",
            "version_id",
            "snapshot_id",
            "account_id",
            "region",
            "size",
            "sha256",
            "content_type",
            "tags",
            "metadata",
            "retention_class",
            "retain_until",
            "legal_hold",
            "integrity",
            "verified_at",
            "disposed_at",
        ]
        read_only_fields = fields


class UploadSerializer(serializers.Serializer[dict[str, Any]]):
    """What an upload says about its file, in the query string (the body is the file)."""

    name = serializers.CharField(max_length=255)
    kind = serializers.ChoiceField(EvidenceKind.choices, default=EvidenceKind.FILE)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    # A field named like Field.source: DRF pops declared fields off the class.
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=2048, required=False, allow_blank=True, default=""
    )
    retention_class = serializers.CharField(required=False)
    sha256 = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        help_text="The hash the client computed: a body that does not match is refused.",
    )

    def validate_retention_class(self, value: str) -> str:
        return known_retention_class(value)


class CustodyEventSerializer(serializers.ModelSerializer[CustodyEvent]):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = CustodyEvent
        fields = [
            "id",
            "item",
            "action",
            "at",
            "actor",
            "from_location",
            "to_location",
            "sha256",
            "client_address",
            "details",
        ]
        read_only_fields = fields

    def get_actor(self, event: CustodyEvent) -> dict[str, str]:
        return {"kind": event.actor_kind, "name": event.actor_name}


class DownloadLinkSerializer(serializers.Serializer[dict[str, Any]]):
    url = serializers.URLField(help_text="GET it once, signed in as yourself, before it expires.")
    expires_at = serializers.DateTimeField()


class LegalHoldSerializer(serializers.Serializer[dict[str, Any]]):
    on = serializers.BooleanField(help_text="true sets the hold, false lifts it.")
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        help_text="Required to set a hold: the matter it is for.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["on"] and not attrs["reason"].strip():
            raise serializers.ValidationError({"reason": "Say what the hold is for."})
        return attrs


class RetentionSerializer(serializers.Serializer[dict[str, Any]]):
    """One of the two: a class (counted from acquisition) or a date."""

    retention_class = serializers.CharField(required=False)
    retain_until = serializers.DateTimeField(required=False)

    def validate_retention_class(self, value: str) -> str:
        return known_retention_class(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "retention_class" in attrs and "retain_until" in attrs:
            raise serializers.ValidationError(
                {"retain_until": "Give a retention class or a date, not both."}
            )
        if not attrs:
            raise serializers.ValidationError(
                {"retention_class": "Give a retention class or a retain_until date."}
            )
        return attrs


class DisposeSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(max_length=500, help_text="Why the bytes may go now.")


class TransferSerializer(serializers.Serializer[dict[str, Any]]):
    recipient = serializers.CharField(
        max_length=500, help_text="Who took the copy: a force, a firm, a named person."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
