"""Evidence items, where each is kept, and every event of its life (its chain of custody)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from cases.models import Incident
from evidence.choices import (
    FAILED_INTEGRITY,
    CustodyAction,
    EvidenceKind,
    Integrity,
    StoreKind,
)
from irportal.actors import Actor, ActorKind


def _dict() -> dict[str, Any]:
    return {}


class EvidenceItem(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="evidence")
    kind = models.CharField(max_length=16, choices=EvidenceKind.choices)
    name = models.CharField(max_length=255, help_text="A file name, or what the item is.")
    description = models.TextField(blank=True)
    source = models.CharField(
        max_length=2048, blank=True, help_text="The resource ARN or host it came from."
    )

    acquired_at = models.DateTimeField(default=timezone.now)
    acquired_by_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    acquired_by = models.CharField(max_length=150)
    acquired_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action_run = models.ForeignKey(
        "playbooks.ActionRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="evidence",
        help_text="The response action that collected it, if one did.",
    )

    # Where it is: a bucket/key/version, a snapshot id, or a path under the local store.
    store = models.CharField(max_length=16, choices=StoreKind.choices)
    bucket = models.CharField(max_length=63, blank=True)
    key = models.CharField(max_length=1024, blank=True)
    version_id = models.CharField(max_length=1024, blank=True)
    snapshot_id = models.CharField(max_length=64, blank=True)
    account_id = models.CharField(max_length=12, blank=True)
    region = models.CharField(max_length=32, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    tags = models.JSONField(default=_dict, blank=True)
    metadata = models.JSONField(default=_dict, blank=True)

    retention_class = models.CharField(max_length=32)
    retain_until = models.DateTimeField()
    legal_hold = models.BooleanField(default=False)

    integrity = models.CharField(
        max_length=16, choices=Integrity.choices, default=Integrity.UNVERIFIED
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    disposed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["incident", "acquired_at", "id"]
        indexes = [models.Index(fields=["integrity", "verified_at"], name="evidence_to_verify")]

    def __str__(self) -> str:
        return f"{self.incident.reference} evidence #{self.pk}: {self.name}"

    @property
    def acquired_by_actor(self) -> Actor:
        return Actor(
            kind=ActorKind(self.acquired_by_kind), name=self.acquired_by, user=self.acquired_by_user
        )

    @property
    def location(self) -> str:
        """One line saying where the item is, for custody events and people."""
        if self.store == StoreKind.S3:
            version = f"?versionId={self.version_id}" if self.version_id else ""
            return f"s3://{self.bucket}/{self.key}{version}"
        if self.store == StoreKind.EBS_SNAPSHOT:
            return f"ebs:{self.account_id}/{self.region}/{self.snapshot_id}"
        return f"local:{self.key}"

    @property
    def integrity_failed(self) -> bool:
        return self.integrity in FAILED_INTEGRITY

    def may_dispose(self, now: datetime | None = None) -> tuple[bool, str]:
        if self.disposed_at:
            return False, "already disposed"
        if self.legal_hold:
            return False, "under legal hold"
        if self.retain_until > (now or timezone.now()):
            return False, f"retained until {self.retain_until:%Y-%m-%d}"
        return True, ""


class CustodyEvent(models.Model):
    """One event in an item's life: who, when, from where to where, and the hash seen then.
    Written with the item's timeline entry, in one transaction; never changed."""

    item = models.ForeignKey(EvidenceItem, on_delete=models.PROTECT, related_name="custody")
    action = models.CharField(max_length=24, choices=CustodyAction.choices)
    at = models.DateTimeField(default=timezone.now)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_name = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_location = models.CharField(max_length=2048, blank=True)
    to_location = models.CharField(max_length=2048, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="The hash seen at that moment.")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=_dict, blank=True)

    class Meta:
        ordering = ["item", "at", "id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_name} at {self.at:%Y-%m-%d %H:%M}"


class DownloadLink(models.Model):
    """A short-lived link to download one item. Only the token's hash is stored."""

    item = models.ForeignKey(EvidenceItem, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True)
    issued_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"link to {self.item_id} for {self.issued_to_id} until {self.expires_at:%H:%M:%S}"

    @staticmethod
    def new_token() -> tuple[str, str]:
        """(token for the link, hash to store)."""
        token = secrets.token_urlsafe(32)
        return token, DownloadLink.hash_of(token)

    @staticmethod
    def hash_of(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
