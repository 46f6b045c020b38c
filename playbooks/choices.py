from django.db import models


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"
    DEVELOPMENT = "development", "Development"
    SANDBOX = "sandbox", "Sandbox"
    SECURITY = "security", "Security tooling"
    DEMO = "demo", "Demo (simulated)"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    # The intent to run is committed and a task was sent; the reconciler re-sends it when
    # no worker has picked it up in time.
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"
    UNDONE = "undone", "Undone"


# States in which a step will not change again by itself.
SETTLED_STEP_STATES = (
    StepState.SUCCEEDED,
    StepState.FAILED,
    StepState.SKIPPED,
    StepState.CANCELLED,
    StepState.UNDONE,
)


class ActionState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNDOING = "undoing", "Undo in progress"
    UNDONE = "undone", "Undone"
    # Queued for a run that was cancelled before any worker took it.
    CANCELLED = "cancelled", "Cancelled"


IN_FLIGHT_ACTION_STATES = (ActionState.QUEUED, ActionState.RUNNING, ActionState.UNDOING)


class OnFailure(models.TextChoices):
    STOP = "stop", "Stop the run"
    CONTINUE = "continue", "Go on with the next step"
