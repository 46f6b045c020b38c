from __future__ import annotations

import re
from fnmatch import translate
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from cases.choices import Category, ObjectiveKind, Severity
from cases.models import Incident
from findings.choices import SEVERITY_RANKS, Decision, FindingSeverity, RuleEffect, Source
from irportal import roles
from playbooks.models import Playbook

if TYPE_CHECKING:
    from findings.parsing import ParsedFinding


class FindingQuerySet(models.QuerySet["Finding"]):
    def visible_to(self, user: Any) -> FindingQuerySet:
        """Findings go with their incident; those in none yet are the triage queue, which
        every working role and leadership may read."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if roles.is_lead(user):
            return self.all()
        in_visible = Q(incident__in=Incident.objects.visible_to(user))
        if roles.roles_of(user) & {roles.RESPONDER, roles.LEADERSHIP, roles.INTEGRATION}:
            return self.filter(Q(incident__isnull=True) | in_visible)
        return self.filter(in_visible)


class Finding(models.Model):
    """One detector finding, stored once per provider identity."""

    source = models.CharField(max_length=16, choices=Source.choices)
    provider_id = models.CharField(max_length=512, help_text="The detector's own id for it.")
    type = models.CharField(max_length=255)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=FindingSeverity.choices)
    severity_score = models.FloatField(null=True, blank=True, help_text="As the source gave it.")
    account_id = models.CharField(max_length=12, blank=True)
    region = models.CharField(max_length=32, blank=True)
    resources = models.JSONField(default=list, blank=True)
    primary_resource = models.CharField(max_length=2048, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(default=1, help_text="Occurrences, as the source counts.")
    provider_updated_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField()

    received_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    revisions = models.PositiveIntegerField(default=1, help_text="Versions received.")

    incident = models.ForeignKey(
        Incident,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="findings",
        db_index=False,  # finding_by_incident_recency leads with it
    )
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.UNTRIAGED)
    rule = models.ForeignKey(
        "findings.TriageRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.CharField(max_length=500, blank=True)

    objects = FindingQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "provider_id"], name="finding_once"),
        ]
        indexes = [
            models.Index(fields=["-received_at", "-id"], name="finding_newest_first"),
            models.Index(fields=["decision", "-received_at"], name="finding_queue"),
            # Grouping asks whether an incident saw a finding lately; an incident may have
            # thousands.
            models.Index(fields=["incident", "-last_seen"], name="finding_by_incident_recency"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.type}"

    def is_newer(self, parsed: ParsedFinding) -> bool:
        """Whether `parsed` is a later version of this finding than the one stored."""
        if parsed.raw == self.raw:
            # The same event again. Without times of its own (a generic event without
            # first_seen, a record without eventTime) it would otherwise look seen just now.
            return False
        if parsed.count != self.count:
            return parsed.count > self.count
        if parsed.provider_updated_at and self.provider_updated_at:
            return parsed.provider_updated_at > self.provider_updated_at
        return parsed.last_seen > self.last_seen


class QuarantinedEvent(models.Model):
    """Something sent to the portal that no parser understood, kept until it is."""

    received_at = models.DateTimeField(default=timezone.now)
    received_by = models.CharField(max_length=150)
    payload = models.TextField(help_text="Exactly as received (JSON where it was JSON).")
    error = models.CharField(max_length=1000)
    resubmitted_at = models.DateTimeField(null=True, blank=True)
    resubmitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "quarantined event"

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M} {self.error[:60]}"


def _list() -> list[str]:
    return []


NO_PLAYBOOK_ON_SUPPRESS = "A rule that suppresses puts no finding in an incident to run it on."


def known_playbook(slug: str) -> None:
    """A triage rule may name only a playbook that exists."""
    if slug and not Playbook.objects.filter(slug=slug).exists():
        known = ", ".join(
            Playbook.objects.order_by("slug").values_list("slug", flat=True).distinct()
        )
        raise ValidationError(f"No playbook {slug!r}; known: {known or 'none'}.")


class TriageRule(models.Model):
    """Decides what becomes of a new finding. Rules are tried by position; the first that
    matches decides, unless it says to go on to the next."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=100, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    continue_matching = models.BooleanField(
        default=False, help_text="After acting, let later rules act on the finding too."
    )

    sources = models.JSONField(default=_list, blank=True, help_text="Empty: any source.")
    type_patterns = models.JSONField(
        default=_list, blank=True, help_text="Globs such as 'CryptoCurrency:EC2/*'. Empty: any."
    )
    min_severity = models.CharField(max_length=16, choices=FindingSeverity.choices, blank=True)
    max_severity = models.CharField(max_length=16, choices=FindingSeverity.choices, blank=True)
    accounts = models.JSONField(default=_list, blank=True, help_text="Empty: any account.")
    regions = models.JSONField(default=_list, blank=True, help_text="Empty: any region.")
    resource_tags = models.JSONField(
        default=dict, blank=True, help_text="Tags a resource of the finding must all carry."
    )

    effect = models.CharField(max_length=16, choices=RuleEffect.choices)
    incident_severity = models.CharField(
        max_length=8, choices=Severity.choices, blank=True, help_text="Empty: from the finding."
    )
    incident_category = models.CharField(
        max_length=32, choices=Category.choices, default=Category.OTHER
    )
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restricted = models.BooleanField(default=False)
    objectives = models.JSONField(
        default=_list, blank=True, help_text=f"Kinds among: {', '.join(ObjectiveKind.values)}."
    )
    target_incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suppress_reason = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The rule stops matching after this time."
    )
    # A slug rather than a version: the playbook may change after the rule is written, and
    # the rule starts its newest enabled version.
    playbook = models.CharField(
        max_length=80,
        blank=True,
        validators=[known_playbook],
        help_text="Started on the incident the finding goes to: its newest enabled version.",
    )
    playbook_dry_run = models.BooleanField(
        "dry run of the playbook",
        default=False,
        help_text="Record what the playbook would do, without acting.",
    )

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name

    @cached_property
    def _type_pattern(self) -> re.Pattern[str]:
        """The globs as one expression: rules are cached and tried on every finding."""
        return re.compile("|".join(f"(?:{translate(p)})" for p in self.type_patterns))

    def matches(self, finding: Finding) -> bool:
        if not self.enabled or (self.expires_at and self.expires_at <= timezone.now()):
            return False
        if self.sources and finding.source not in self.sources:
            return False
        if self.type_patterns and not self._type_pattern.match(finding.type):
            return False
        rank = SEVERITY_RANKS[finding.severity]
        if self.min_severity and rank < SEVERITY_RANKS[self.min_severity]:
            return False
        if self.max_severity and rank > SEVERITY_RANKS[self.max_severity]:
            return False
        if self.accounts and finding.account_id not in self.accounts:
            return False
        if self.regions and finding.region not in self.regions:
            return False
        return not self.resource_tags or any(
            self.resource_tags.items() <= (resource.get("tags") or {}).items()
            for resource in finding.resources
        )
