from django.db import models


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1: critical, confirmed compromise of production or sensitive data"
    SEV2 = "sev2", "SEV2: high, confirmed compromise limited in scope"
    SEV3 = "sev3", "SEV3: medium, suspicious activity under investigation"
    SEV4 = "sev4", "SEV4: low, minor or informational"


class Category(models.TextChoices):
    COMPROMISED_CREDENTIALS = "compromised_credentials", "Compromised credentials"
    COMPROMISED_INSTANCE = "compromised_instance", "Compromised instance"
    DATA_EXPOSURE = "data_exposure", "Data exposure"
    MALWARE = "malware", "Malware or cryptomining"
    DENIAL_OF_SERVICE = "denial_of_service", "Denial of service"
    UNAUTHORIZED_CHANGE = "unauthorized_change", "Unauthorized change"
    OTHER = "other", "Other"


class TLP(models.TextChoices):
    """Traffic Light Protocol 2.0: how far what is said about the incident may travel."""

    CLEAR = "clear", "TLP:CLEAR"
    GREEN = "green", "TLP:GREEN"
    AMBER = "amber", "TLP:AMBER"
    AMBER_STRICT = "amber_strict", "TLP:AMBER+STRICT"
    RED = "red", "TLP:RED"


class Status(models.TextChoices):
    """The incident's phase, after NIST SP 800-61."""

    DETECTED = "detected", "Detected"
    TRIAGED = "triaged", "Triaged"
    CONTAINED = "contained", "Contained"
    ERADICATED = "eradicated", "Eradicated"
    RECOVERED = "recovered", "Recovered"
    CLOSED = "closed", "Closed"


class Resolution(models.TextChoices):
    RESOLVED = "resolved", "Resolved"
    FALSE_POSITIVE = "false_positive", "False positive"
    BENIGN = "benign", "Benign, expected activity"
    DUPLICATE = "duplicate", "Duplicate of another incident"


class ParticipantRole(models.TextChoices):
    COMMANDER = "commander", "Incident commander"
    SCRIBE = "scribe", "Scribe"
    LIAISON = "liaison", "Liaison"
    RESPONDER = "responder", "Responder"
    OBSERVER = "observer", "Observer"


class ObjectiveKind(models.TextChoices):
    CONTAIN = "contain", "Contain"
    MITIGATE = "mitigate", "Mitigate"
    RECOVER = "recover", "Recover"
    PRESERVE_EVIDENCE = "preserve_evidence", "Preserve evidence"
    ATTRIBUTE = "attribute", "Attribute"
    NOTIFY = "notify", "Notify"
    OTHER = "other", "Other"


class ObjectiveStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    MET = "met", "Met"
    DROPPED = "dropped", "Dropped"


class Audience(models.TextChoices):
    RESPONDERS = "responders", "Responders"
    LEADERSHIP = "leadership", "Leadership"
    LEGAL = "legal", "Legal"
    CUSTOMERS = "customers", "Customers"
    REGULATORS = "regulators", "Regulators"
    PUBLIC = "public", "Public"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat"
    PHONE = "phone", "Phone or bridge"
    STATUS_PAGE = "status_page", "Status page"
    LETTER = "letter", "Letter"
    OTHER = "other", "Other"


class CommunicationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    SENT = "sent", "Sent"


class EntryKind(models.TextChoices):
    INCIDENT_OPENED = "incident.opened", "Incident opened"
    INCIDENT_UPDATED = "incident.updated", "Incident updated"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged", "Incident acknowledged"
    INCIDENT_STATUS_CHANGED = "incident.status_changed", "Status changed"
    ACKNOWLEDGEMENT_MISSED = "incident.acknowledgement_missed", "Acknowledgement deadline missed"
    PARTICIPANT_ADDED = "participant.added", "Participant added"
    PARTICIPANT_UPDATED = "participant.updated", "Participant changed"
    PARTICIPANT_REMOVED = "participant.removed", "Participant removed"
    RESOURCE_ADDED = "resource.added", "Affected resource added"
    RESOURCE_UPDATED = "resource.updated", "Affected resource changed"
    RESOURCE_REMOVED = "resource.removed", "Affected resource removed"
    OBJECTIVE_ADDED = "objective.added", "Objective added"
    OBJECTIVE_UPDATED = "objective.updated", "Objective changed"
    OBJECTIVE_REMOVED = "objective.removed", "Objective removed"
    TASK_ADDED = "task.added", "Task added"
    TASK_UPDATED = "task.updated", "Task changed"
    TASK_REMOVED = "task.removed", "Task removed"
    COMMUNICATION_DRAFTED = "communication.drafted", "Communication drafted"
    COMMUNICATION_UPDATED = "communication.updated", "Communication changed"
    COMMUNICATION_APPROVED = "communication.approved", "Communication approved"
    COMMUNICATION_SENT = "communication.sent", "Communication sent"
    COMMUNICATION_REMOVED = "communication.removed", "Communication discarded"
    FINDING_ADDED = "finding.added", "Finding added"
    FINDING_UPDATED = "finding.updated", "Finding seen again"
    PLAYBOOK_STARTED = "playbook.started", "Playbook started"
    PLAYBOOK_NOT_STARTED = "playbook.not_started", "Playbook could not start"
    PLAYBOOK_FINISHED = "playbook.finished", "Playbook finished"
    PLAYBOOK_CANCELLED = "playbook.cancelled", "Playbook cancelled"
    STEP_AWAITING_APPROVAL = "step.awaiting_approval", "Step awaiting approval"
    STEP_APPROVED = "step.approved", "Step approved"
    STEP_REJECTED = "step.rejected", "Step rejected"
    STEP_SKIPPED = "step.skipped", "Step skipped"
    ACTION_REQUESTED = "action.requested", "Response action requested"
    ACTION_SUCCEEDED = "action.succeeded", "Response action succeeded"
    ACTION_FAILED = "action.failed", "Response action failed"
    ACTION_UNDONE = "action.undone", "Response action undone"
    EVIDENCE_ADDED = "evidence.added", "Evidence added"
    EVIDENCE_CUSTODY = "evidence.custody", "Evidence custody event"
    EVIDENCE_INTEGRITY_FAILED = "evidence.integrity_failed", "Evidence failed its integrity check"
    EVIDENCE_DISPOSED = "evidence.disposed", "Evidence disposed"
    NOTE = "note", "Note"
    DECISION = "decision", "Decision"


# Kinds a person may write directly; every other kind is written by the code that made the
# change it describes.
MANUAL_ENTRY_KINDS = (EntryKind.NOTE, EntryKind.DECISION)
