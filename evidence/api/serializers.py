from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from evidence.choices import EvidenceKind
from evidence.models import CustodyEvent, EvidenceItem


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
        if value not in settings.EVIDENCE_RETENTION_CLASSES:
            known = ", ".join(settings.EVIDENCE_RETENTION_CLASSES)
            raise serializers.ValidationError(f"one of {known}")
        return value


class CustodyEventSerializer(serializers.ModelSerializer[CustodyEvent]):
    class Meta:
        model = CustodyEvent
        fields = [
            "id",
            "item",
            "action",
            "at",
            "actor_kind",
            "actor_name",
            "from_location",
            "to_location",
            "sha256",
            "client_address",
            "details",
        ]
        read_only_fields = fields
