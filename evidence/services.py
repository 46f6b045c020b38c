"""Everything that happens to evidence, each as a custody event and a timeline entry
written in one transaction.

Bytes are stored first, outside any transaction (they may take minutes), then the item and
its first custody event are committed. Should that commit fail, the stored object stays
where it is, locked, and the log names it: nothing is deleted to tidy up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import Incident, TimelineEntry
from evidence import snapshots
from evidence.choices import CustodyAction, EvidenceKind, Integrity, StoreKind
from evidence.models import CustodyEvent, DownloadLink, EvidenceItem
from evidence.stores import (
    EvidenceStore,
    Placement,
    Stored,
    StoreError,
    default_store,
    hash_stream,
    put,
    store_for,
)
from irportal.actors import Actor
from irportal.errors import StateConflict

logger = logging.getLogger(__name__)

# Custody actions that get a timeline kind of their own; the others are `evidence.custody`.
_TIMELINE_KINDS = {
    CustodyAction.ACQUIRED: EntryKind.EVIDENCE_ADDED,
    CustodyAction.UPLOADED: EntryKind.EVIDENCE_ADDED,
    CustodyAction.INTEGRITY_FAILED: EntryKind.EVIDENCE_INTEGRITY_FAILED,
    CustodyAction.DISPOSED: EntryKind.EVIDENCE_DISPOSED,
}


# ---------------------------------------------------------------------------------------
# Retention


def retention_days(retention_class: str) -> int:
    try:
        return settings.EVIDENCE_RETENTION_CLASSES[retention_class]
    except KeyError:
        known = ", ".join(settings.EVIDENCE_RETENTION_CLASSES)
        raise ValueError(f"no retention class {retention_class!r} (known: {known})") from None


def default_retention(incident: Incident) -> str:
    """The longest class the incident's severity or category calls for."""
    candidates = [
        settings.EVIDENCE_RETENTION_DEFAULT,
        settings.EVIDENCE_RETENTION_BY_SEVERITY.get(incident.severity),
        settings.EVIDENCE_RETENTION_BY_CATEGORY.get(incident.category),
    ]
    return max((c for c in candidates if c), key=retention_days)


# ---------------------------------------------------------------------------------------
# Custody


def record_custody(
    actor: Actor,
    item: EvidenceItem,
    action: str,
    summary: str,
    *,
    from_location: str = "",
    to_location: str = "",
    sha256: str = "",
    client_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> CustodyEvent:
    """One custody event and its timeline entry, in the caller's transaction."""
    with transaction.atomic(savepoint=False):
        event = CustodyEvent.objects.create(
            item=item,
            action=action,
            actor_kind=actor.kind,
            actor_name=actor.name,
            actor_user=actor.user,
            from_location=from_location,
            to_location=to_location,
            sha256=sha256,
            client_address=client_address,
            details=details or {},
        )
        TimelineEntry.objects.append(
            item.incident,
            actor,
            _TIMELINE_KINDS.get(CustodyAction(action), EntryKind.EVIDENCE_CUSTODY),
            summary,
            {
                "evidence": item.pk,
                "custody": action,
                "from": from_location,
                "to": to_location,
                "sha256": sha256,
                **(details or {}),
            },
        )
    logger.info(
        "evidence.custody incident=%s item=%s action=%s actor=%s",
        item.incident.reference,
        item.pk,
        action,
        actor,
    )
    return event


# ---------------------------------------------------------------------------------------
# Getting evidence in


def placement_for(
    incident: Incident,
    name: str,
    *,
    content_type: str = "application/octet-stream",
    retention_class: str | None = None,
    tags: dict[str, str] | None = None,
) -> Placement:
    """Where and for how long a new item of `incident` is to be kept."""
    retention_class = retention_class or default_retention(incident)
    return Placement(
        incident_reference=incident.reference,
        name=name,
        retain_until=timezone.now() + timedelta(days=retention_days(retention_class)),
        retention_class=retention_class,
        content_type=content_type,
        tags={**(tags or {}), "ir-portal:incident": incident.reference},
    )


def upload(
    actor: Actor,
    incident: Incident,
    chunks: Iterable[bytes],
    placement: Placement,
    *,
    store: EvidenceStore | None = None,
    **details: Any,
) -> EvidenceItem:
    """Stream `chunks` into the store, hashing on the way, and record the item."""
    store = store or default_store()
    stored = put(store, chunks, placement)
    return record_upload(actor, incident, stored, placement, store=store, **details)


def record_upload(
    actor: Actor,
    incident: Incident,
    stored: Stored,
    placement: Placement,
    *,
    store: EvidenceStore,
    kind: str = EvidenceKind.FILE,
    description: str = "",
    source: str = "",
    metadata: dict[str, Any] | None = None,
    client_address: str | None = None,
) -> EvidenceItem:
    """The item for bytes someone uploaded into the store, and its first custody event."""
    return _record_stored(
        actor,
        incident,
        stored,
        placement,
        store,
        EvidenceItem(kind=kind, description=description, source=source, metadata=metadata or {}),
        CustodyAction.UPLOADED,
        from_location=f"upload from {client_address or 'unknown'}",
        client_address=client_address,
    )


def record_collected(
    action_run: Any,
    stored: Stored,
    placement: Placement,
    *,
    store: EvidenceStore,
    kind: str,
    source: str,
    description: str = "",
    metadata: dict[str, Any] | None = None,
    copied_from: str = "",
) -> EvidenceItem:
    """The item for bytes a collection action put into the store, acquired by its run;
    `copied_from` names the original when the bytes are a copy of it."""
    item = EvidenceItem(
        kind=kind,
        description=description,
        source=source,
        metadata=metadata or {},
        action_run=action_run,
    )
    with transaction.atomic():
        item = _record_stored(
            action_run.actor,
            action_run.incident,
            stored,
            placement,
            store,
            item,
            CustodyAction.ACQUIRED,
            from_location=source,
        )
        if copied_from:
            _record_copy(action_run.actor, item, copied_from)
    return item


def _record_stored(
    actor: Actor,
    incident: Incident,
    stored: Stored,
    placement: Placement,
    store: EvidenceStore,
    item: EvidenceItem,
    custody: CustodyAction,
    *,
    from_location: str,
    client_address: str | None = None,
) -> EvidenceItem:
    """Complete `item` with where and how long it is kept, save it and write its first
    custody event. Retention is the placement's: the date the store's lock was set with."""
    item.incident = incident
    item.name = placement.name
    item.acquired_by_kind, item.acquired_by = actor.kind, actor.name
    item.acquired_by_user = actor.user
    item.store, item.bucket, item.key = stored.store, stored.bucket, stored.key
    item.version_id, item.size, item.sha256 = stored.version_id, stored.size, stored.sha256
    item.content_type, item.tags = placement.content_type, placement.tags
    item.retention_class, item.retain_until = placement.retention_class, placement.retain_until
    verb = "uploaded" if custody == CustodyAction.UPLOADED else "acquired"
    try:
        with transaction.atomic():
            item.save(force_insert=True)
            record_custody(
                actor,
                item,
                custody,
                f"Evidence {verb}: {item.name} ({stored.size:,} bytes, "
                f"sha256 {stored.sha256[:12]}…)",
                from_location=from_location,
                to_location=item.location,
                sha256=stored.sha256,
                client_address=client_address,
                details={
                    "size": stored.size,
                    "retain_until": item.retain_until.isoformat(),
                    "action_run": item.action_run_id,
                },
            )
            tag_stored_object(item, store)
    except Exception:
        logger.exception(
            "evidence.orphaned incident=%s store=%s key=%s",
            incident.reference,
            stored.store,
            stored.key,
        )
        raise
    return item


def tag_stored_object(item: EvidenceItem, store: EvidenceStore) -> None:
    """S3 objects carry the item's id too, which exists only once the row does; the tags
    the object was written with are kept (S3 replaces a tag set whole)."""
    if item.store != StoreKind.S3:
        return
    s3 = store.s3  # type: ignore[attr-defined]
    tags = {
        **item.tags,
        "ir-portal:incident": item.incident.reference,
        "ir-portal:item": str(item.pk),
        "ir-portal:retention-class": item.retention_class,
    }
    s3.put_object_tagging(
        Bucket=item.bucket,
        Key=item.key,
        VersionId=item.version_id,
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
    )


def record_acquired(
    actor: Actor,
    incident: Incident,
    *,
    kind: str,
    name: str,
    store: str,
    source: str = "",
    description: str = "",
    action_run: Any = None,
    bucket: str = "",
    key: str = "",
    version_id: str = "",
    snapshot_id: str = "",
    account_id: str = "",
    region: str = "",
    size: int | None = None,
    sha256: str = "",
    metadata: dict[str, Any] | None = None,
    retention_class: str | None = None,
    copied_from: str = "",
) -> EvidenceItem:
    """Record evidence a collection action put in place (a snapshot copy, an export)."""
    retention_class = retention_class or default_retention(incident)
    with transaction.atomic():
        item = EvidenceItem.objects.create(
            incident=incident,
            kind=kind,
            name=name,
            description=description,
            source=source,
            acquired_by_kind=actor.kind,
            acquired_by=actor.name,
            acquired_by_user=actor.user,
            action_run=action_run,
            store=store,
            bucket=bucket,
            key=key,
            version_id=version_id,
            snapshot_id=snapshot_id,
            account_id=account_id,
            region=region,
            size=size,
            sha256=sha256,
            metadata=metadata or {},
            retention_class=retention_class,
            retain_until=timezone.now() + timedelta(days=retention_days(retention_class)),
        )
        record_custody(
            actor,
            item,
            CustodyAction.ACQUIRED,
            f"Evidence acquired: {name}",
            from_location=copied_from or source,
            to_location=item.location,
            sha256=sha256,
            details={"action_run": getattr(action_run, "pk", None)},
        )
        if copied_from:
            _record_copy(actor, item, copied_from)
    return item


def _record_copy(actor: Actor, item: EvidenceItem, original: str) -> CustodyEvent:
    """The item is a copy: from where to where, and the hash of what arrived."""
    return record_custody(
        actor,
        item,
        CustodyAction.COPIED,
        f"Evidence copied: {original} to {item.location}",
        from_location=original,
        to_location=item.location,
        sha256=item.sha256,
        details={"action_run": item.action_run_id},
    )


# ---------------------------------------------------------------------------------------
# Reading evidence


def viewed(actor: Actor, item: EvidenceItem, client_address: str | None = None) -> CustodyEvent:
    """Someone read the item's record (its bytes are a download, recorded as one)."""
    return record_custody(
        actor,
        item,
        CustodyAction.VIEWED,
        f"Evidence record viewed: {item.name}",
        sha256=item.sha256,
        client_address=client_address,
    )


def issue_download_link(actor: Actor, item: EvidenceItem, client_address: str | None = None) -> str:
    """A token for one short-lived download of `item` by `actor`'s user."""
    if actor.user is None:
        raise StateConflict("download links are issued to people")
    if not item.key or item.disposed_at:
        raise StateConflict("this item has no bytes to download here")
    token, token_hash = DownloadLink.new_token()
    expires_at = timezone.now() + timedelta(seconds=settings.EVIDENCE_DOWNLOAD_LINK_SECONDS)
    with transaction.atomic():
        DownloadLink.objects.create(
            item=item, token_hash=token_hash, issued_to=actor.user, expires_at=expires_at
        )
        record_custody(
            actor,
            item,
            CustodyAction.DOWNLOAD_LINK_ISSUED,
            f"Download link issued for {item.name}, valid until {expires_at:%H:%M:%S} UTC",
            client_address=client_address,
            details={"expires_at": expires_at.isoformat()},
        )
    return token


def redeem_download_link(
    actor: Actor, token: str, client_address: str | None = None
) -> tuple[EvidenceItem, Iterator[bytes]]:
    """The item and its bytes, once, for the person the link was issued to."""
    now = timezone.now()
    with transaction.atomic():
        link = (
            DownloadLink.objects.select_for_update()
            .select_related("item__incident")
            .filter(token_hash=DownloadLink.hash_of(token))
            .first()
        )
        if link is None or link.issued_to_id != getattr(actor.user, "pk", None):
            raise LookupError("no such link")
        if link.used_at is not None:
            raise StateConflict("this link was used already")
        if link.expires_at <= now:
            raise StateConflict("this link has expired")
        link.used_at = now
        link.save(update_fields=["used_at"])
        item = link.item
        # Opened first: a download of bytes that are not there is not a custody event.
        store = store_for(item.store)
        chunks = store.read(item.key, bucket=item.bucket, version_id=item.version_id)
        record_custody(
            actor,
            item,
            CustodyAction.DOWNLOADED,
            f"Evidence downloaded: {item.name}",
            from_location=item.location,
            to_location=f"download to {client_address or 'unknown'}",
            sha256=item.sha256,
            client_address=client_address,
        )
    return item, chunks


# ---------------------------------------------------------------------------------------
# Keeping evidence


def extend_retention(
    actor: Actor,
    item: EvidenceItem,
    *,
    retention_class: str | None = None,
    until: datetime | None = None,
) -> EvidenceItem:
    """Keep an item longer (never shorter: a lock in compliance mode could not follow)."""
    if retention_class:
        until = item.acquired_at + timedelta(days=retention_days(retention_class))
    if until is None:
        raise ValueError("give a retention class or a date")
    with transaction.atomic():
        item = EvidenceItem.objects.select_for_update().select_related("incident").get(pk=item.pk)
        # Compared under the lock: the caller's copy may predate another extension.
        if until < item.retain_until:
            raise StateConflict(
                f"retention can only be extended; it runs until {item.retain_until:%Y-%m-%d}"
            )
        before = item.retain_until
        if item.store in (StoreKind.S3, StoreKind.LOCAL):
            store_for(item.store).extend_retention(
                item.key, until, bucket=item.bucket, version_id=item.version_id
            )
        item.retain_until = until
        item.retention_class = retention_class or item.retention_class
        item.save(update_fields=["retain_until", "retention_class"])
        record_custody(
            actor,
            item,
            CustodyAction.RETENTION_CHANGED,
            f"Retention of {item.name} extended to {until:%Y-%m-%d}",
            sha256=item.sha256,
            details={"before": before.isoformat(), "after": until.isoformat()},
        )
    return item


def set_legal_hold(actor: Actor, item: EvidenceItem, on: bool, reason: str = "") -> EvidenceItem:
    with transaction.atomic():
        item = EvidenceItem.objects.select_for_update().select_related("incident").get(pk=item.pk)
        if item.legal_hold == on:
            return item
        if item.disposed_at:
            raise StateConflict(f"{item.name} was disposed of; there is nothing left to hold")
        if item.store in (StoreKind.S3, StoreKind.LOCAL):
            store_for(item.store).set_legal_hold(
                item.key, on, bucket=item.bucket, version_id=item.version_id
            )
        item.legal_hold = on
        item.save(update_fields=["legal_hold"])
        record_custody(
            actor,
            item,
            CustodyAction.LEGAL_HOLD_SET if on else CustodyAction.LEGAL_HOLD_LIFTED,
            f"Legal hold {'set on' if on else 'lifted from'} {item.name}"
            + (f": {reason}" if reason else ""),
            sha256=item.sha256,
            details={"reason": reason},
        )
    return item


def transfer_out(
    actor: Actor, item: EvidenceItem, recipient: str, reason: str = ""
) -> CustodyEvent:
    """Record that a copy left IR Portal's custody (to law enforcement, a forensics firm)."""
    if item.disposed_at:
        raise StateConflict(f"{item.name} was disposed of; no copy can leave")
    with transaction.atomic():
        return record_custody(
            actor,
            item,
            CustodyAction.TRANSFERRED_OUT,
            f"{item.name} transferred to {recipient}",
            from_location=item.location,
            to_location=recipient,
            sha256=item.sha256,
            details={"reason": reason},
        )


def dispose(actor: Actor, item: EvidenceItem, reason: str = "") -> EvidenceItem:
    """Delete the bytes (or the snapshot) of an item whose retention ended; the row and its
    custody stay."""
    with transaction.atomic():
        item = EvidenceItem.objects.select_for_update().select_related("incident").get(pk=item.pk)
        allowed, why_not = item.may_dispose()
        if not allowed:
            raise StateConflict(f"{item.name} cannot be disposed of: {why_not}")
        details: dict[str, Any] = {"reason": reason}
        if item.store in (StoreKind.S3, StoreKind.LOCAL):
            store_for(item.store).remove(item.key, bucket=item.bucket, version_id=item.version_id)
        elif item.store == StoreKind.EBS_SNAPSHOT:
            details["snapshot_deleted"] = _delete_snapshot(actor, item)
        item.disposed_at = timezone.now()
        item.save(update_fields=["disposed_at"])
        already_gone = details.get("snapshot_deleted") is False
        record_custody(
            actor,
            item,
            CustodyAction.DISPOSED,
            f"Evidence disposed of after its retention: {item.name}"
            + (f" ({reason})" if reason else "")
            + (f"; {item.snapshot_id} was gone already" if already_gone else ""),
            from_location=item.location,
            sha256=item.sha256,
            details=details,
        )
    return item


def _delete_snapshot(actor: Actor, item: EvidenceItem) -> bool:
    """Delete the item's snapshot in the account that holds it; False if it was gone."""
    try:
        return snapshots.delete(snapshots.ec2_for(item, actor), item.snapshot_id)
    except LookupError as error:
        raise StateConflict(f"{error}; nothing was deleted") from error
    except ClientError as error:
        raise StateConflict(f"AWS refused to delete {item.snapshot_id}: {error}") from error


# ---------------------------------------------------------------------------------------
# Integrity


@dataclass(frozen=True)
class _Check:
    """What one look at an item found."""

    result: Integrity
    sha256: str = ""
    detail: str = ""
    details: dict[str, Any] = field(default_factory=dict)


# What S3 answers when the object (or its version, or the bucket) is not there. AccessDenied
# is not among them: S3 answers it for missing keys only to callers who may not list.
_GONE_FROM_S3 = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404"})

# Said in every snapshot's `verified` custody event, since it carries no hash.
SNAPSHOT_NOT_HASHED = (
    "size and SHA-256 do not apply: a snapshot is not bytes IR Portal hashed on the way in, "
    "and it cannot be changed, so what is checked is that it still exists and is not in error"
)


def verify_each(items: Iterable[EvidenceItem]) -> Iterator[tuple[EvidenceItem, str | Exception]]:
    """Verify each item in turn: its result, or the error that kept it from being checked
    (logged). One item's failure never keeps the others from being checked."""
    for item in items:
        try:
            yield item, verify(item)
        except Exception as error:
            logger.exception(
                "evidence.verify_crashed incident=%s item=%s", item.incident.reference, item.pk
            )
            yield item, error


def verify(item: EvidenceItem, actor: Actor | None = None) -> str:
    """Re-hash the stored bytes (or look at the snapshot); flag and record a mismatch, a
    missing object, a snapshot in error, or an item that could not be read."""
    actor = actor or Actor.system("evidence-verifier")
    if item.disposed_at:
        return item.integrity
    if item.store == StoreKind.EBS_SNAPSHOT:
        check = _check_snapshot(item, actor)
    elif item.store in (StoreKind.S3, StoreKind.LOCAL):
        check = _check_stored_bytes(item)
    else:
        return item.integrity

    with transaction.atomic():
        item = EvidenceItem.objects.select_for_update().select_related("incident").get(pk=item.pk)
        if item.disposed_at:  # while we looked
            return item.integrity
        item.integrity, item.verified_at = check.result, timezone.now()
        item.save(update_fields=["integrity", "verified_at"])
        if check.result == Integrity.INTACT:
            record_custody(
                actor,
                item,
                CustodyAction.VERIFIED,
                f"Integrity verified: {item.name}" + (f" ({check.detail})" if check.detail else ""),
                sha256=check.sha256,
                details=check.details,
            )
        else:
            record_custody(
                actor,
                item,
                CustodyAction.INTEGRITY_FAILED,
                f"Integrity check FAILED for {item.name}: {check.result.label.lower()}",
                sha256=check.sha256,
                details={"expected": item.sha256, "detail": check.detail, **check.details},
            )
    if check.result != Integrity.INTACT:
        logger.error(
            "evidence.integrity_failed incident=%s item=%s result=%s",
            item.incident.reference,
            item.pk,
            check.result,
        )
    return check.result


def _check_stored_bytes(item: EvidenceItem) -> _Check:
    try:
        store = store_for(item.store)
        seen, _ = hash_stream(store.read(item.key, bucket=item.bucket, version_id=item.version_id))
    except Exception as error:
        return _read_failure(item, error)
    if seen == item.sha256:
        return _Check(Integrity.INTACT, sha256=seen)
    return _Check(Integrity.MISMATCH, sha256=seen, detail=f"stored bytes hash to {seen}")


def _read_failure(item: EvidenceItem, error: Exception) -> _Check:
    """Missing only when the store says the object is not there; anything else (denied,
    throttled past the retries, a disk error) means it could not be read."""
    cause = error.__cause__ if isinstance(error, StoreError) else error
    if isinstance(cause, ClientError):
        gone = cause.response.get("Error", {}).get("Code") in _GONE_FROM_S3
    else:
        # The local store raises StoreError of its own only for a file that is not there.
        gone = isinstance(error, StoreError) and cause is None
    if gone:
        return _Check(Integrity.MISSING, detail=str(error))
    logger.warning(
        "evidence.unreadable incident=%s item=%s error=%s",
        item.incident.reference,
        item.pk,
        type(error).__name__,
        exc_info=error,
    )
    return _Check(Integrity.UNREADABLE, detail=f"{type(error).__name__}: {error}")


def _check_snapshot(item: EvidenceItem, actor: Actor) -> _Check:
    """The snapshot, described in the account that holds it, exists and is not in error."""
    try:
        seen = snapshots.describe(snapshots.ec2_for(item, actor), item.snapshot_id)
    except Exception as error:
        return _read_failure(item, error)
    where = f"{item.account_id}/{item.region}"
    if seen is None:
        return _Check(Integrity.MISSING, detail=f"{item.snapshot_id} no longer exists in {where}")
    state = str(seen.get("State", ""))
    if state == "error":
        message = seen.get("StateMessage") or "no message"
        return _Check(Integrity.SNAPSHOT_ERROR, detail=f"{item.snapshot_id}: {message}")
    if state not in ("completed", "pending"):
        # `recoverable` and `recovering`: deleted into (or on its way out of) the Recycle Bin.
        return _Check(Integrity.MISSING, detail=f"{item.snapshot_id} is {state} in {where}")
    return _Check(
        Integrity.INTACT,
        detail=f"snapshot {state}; size and SHA-256 do not apply",
        details={
            "snapshot_state": state,
            "progress": seen.get("Progress", ""),
            "hash": SNAPSHOT_NOT_HASHED,
        },
    )
