from django.db import models


class Source(models.TextChoices):
    GUARDDUTY = "guardduty", "GuardDuty"
    SECURITY_HUB = "securityhub", "Security Hub"
    CLOUDTRAIL = "cloudtrail", "CloudTrail"
    OTHER = "other", "Other tool"


class FindingSeverity(models.TextChoices):
    """Severity on one scale whatever the source; RANKS orders them for ranges."""

    INFORMATIONAL = "informational", "Informational"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SEVERITY_RANKS = {severity: rank for rank, severity in enumerate(FindingSeverity.values)}


class Outcome(models.TextChoices):
    """What became of one received finding, as the events endpoint reports it."""

    NEW = "new", "New"
    UPDATED = "updated", "Updated"
    DUPLICATE = "duplicate", "Duplicate"
    REJECTED = "rejected", "Rejected"


class Decision(models.TextChoices):
    """What triage decided for a finding."""

    UNTRIAGED = "untriaged", "No rule matched; waiting for a person"
    OPENED = "opened", "Opened an incident"
    JOINED = "joined", "Joined an open incident"
    ATTACHED = "attached", "Attached to a named incident"
    SUPPRESSED = "suppressed", "Suppressed as known benign"


class RuleEffect(models.TextChoices):
    OPEN_INCIDENT = "open_incident", "Open an incident (or join one that covers it)"
    ATTACH = "attach", "Attach to an existing incident"
    SUPPRESS = "suppress", "Suppress as known benign"


# What a person may decide for a finding by hand.
HAND_DECISIONS = [
    (d.value, d.label) for d in (Decision.OPENED, Decision.ATTACHED, Decision.SUPPRESSED)
]
