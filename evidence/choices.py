from django.db import models


class EvidenceKind(models.TextChoices):
    DISK_SNAPSHOT = "disk_snapshot", "Disk snapshot"
    MEMORY_IMAGE = "memory_image", "Memory image"
    LOG_EXPORT = "log_export", "Log export"
    FILE = "file", "File"
    SCREENSHOT = "screenshot", "Screenshot"
    OTHER = "other", "Other"


class StoreKind(models.TextChoices):
    LOCAL = "local", "Local store"
    S3 = "s3", "S3 bucket (Object Lock)"
    EBS_SNAPSHOT = "ebs_snapshot", "EBS snapshot"


class CustodyAction(models.TextChoices):
    ACQUIRED = "acquired", "Acquired"
    UPLOADED = "uploaded", "Uploaded"
    COPIED = "copied", "Copied"
    VIEWED = "viewed", "Viewed"
    DOWNLOAD_LINK_ISSUED = "download_link_issued", "Download link issued"
    DOWNLOADED = "downloaded", "Downloaded"
    VERIFIED = "verified", "Verified"
    INTEGRITY_FAILED = "integrity_failed", "Integrity check failed"
    RETENTION_CHANGED = "retention_changed", "Retention changed"
    LEGAL_HOLD_SET = "legal_hold_set", "Legal hold set"
    LEGAL_HOLD_LIFTED = "legal_hold_lifted", "Legal hold lifted"
    TRANSFERRED_OUT = "transferred_out", "Transferred out"
    DISPOSED = "disposed", "Disposed"


class Integrity(models.TextChoices):
    UNVERIFIED = "unverified", "Not verified yet"
    INTACT = "intact", "Intact"
    MISMATCH = "mismatch", "Hash mismatch"
    MISSING = "missing", "Missing from the store"
    # Denied, throttled, a disk error: nothing proven either way, but not intact either.
    UNREADABLE = "unreadable", "Could not be read"
    SNAPSHOT_ERROR = "snapshot_error", "Snapshot in error state"


# What flags an item, on its incident's pages and in the verifiers' exit status.
FAILED_INTEGRITY = frozenset(
    {Integrity.MISMATCH, Integrity.MISSING, Integrity.UNREADABLE, Integrity.SNAPSHOT_ERROR}
)
