"""Evidence in the S3 store, on moto: a versioned bucket with Object Lock in the security
account, reached through that account's role. What S3 itself enforces is checked against
S3 (moto), not against our own code."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from cases.choices import EntryKind
from cases.models import TimelineEntry
from evidence import services
from evidence.choices import CustodyAction, Integrity, StoreKind
from evidence.models import EvidenceItem
from evidence.stores import PART_SIZE, s3_store
from irportal.actors import Actor
from irportal.errors import StateConflict
from playbooks.aws import forget_sessions, session_client, session_for
from playbooks.choices import Environment
from playbooks.models import CloudAccount

pytestmark = pytest.mark.django_db

SECURITY_ACCOUNT = "444455556666"
REGION = "eu-west-1"
BUCKET = "ir-portal-evidence"
MiB = 1024 * 1024


@pytest.fixture
def security_account(aws: str, monkeypatch: pytest.MonkeyPatch) -> CloudAccount:
    """The central security account, registered with the role IR Portal assumes there.
    moto may not let one account into another's bucket, as a real bucket policy would not:
    whatever reaches the bucket came through the security account's role."""
    forget_sessions()
    monkeypatch.setenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "false")
    return CloudAccount.objects.create(
        account_id=SECURITY_ACCOUNT,
        name="Security",
        environment=Environment.PRODUCTION,
        regions=[REGION],
        role_arn=f"arn:aws:iam::{SECURITY_ACCOUNT}:role/ir-portal-evidence",
        is_security_account=True,
    )


@pytest.fixture
def bucket(security_account: CloudAccount, settings: Any) -> Any:
    """The evidence bucket (Object Lock on, hence versioning on), and an S3 client in the
    security account to look at it with."""
    s3 = session_client(session_for(security_account, "tests"), "s3", REGION)
    s3.create_bucket(
        Bucket=BUCKET,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=True,
    )
    settings.EVIDENCE_BUCKET = BUCKET
    settings.EVIDENCE_BUCKET_REGION = REGION
    return s3


def chunks(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def upload(incident: Any, user: Any, data: bytes, **options: Any) -> EvidenceItem:
    placement = services.placement_for(incident, "memory.lime")
    return services.upload(Actor.for_user(user), incident, chunks(data), placement, **options)


def version(item: EvidenceItem) -> dict[str, str]:
    return {"Bucket": item.bucket, "Key": item.key, "VersionId": item.version_id}


def close_to(seen: datetime, wanted: datetime) -> bool:
    """The same instant, give or take the rounding S3 may apply to a retain-until date."""
    return abs(seen - wanted) < timedelta(seconds=1)


def calls_to(s3: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call `s3` makes from now on."""
    seen: list[dict[str, Any]] = []
    s3.meta.events.register(
        f"provide-client-params.s3.{operation}", lambda params, **_: seen.append(dict(params))
    )
    return seen


def test_an_upload_lands_as_a_locked_tagged_version(bucket, incident, responder):
    data = os.urandom(100_000)

    item = upload(incident, responder, data)

    assert (item.store, item.bucket) == (StoreKind.S3, BUCKET)
    assert item.key.startswith(f"{incident.reference}/") and item.version_id
    assert item.sha256 == hashlib.sha256(data).hexdigest() and item.size == len(data)
    # HeadObject, not GetObjectRetention: moto 5.2.5 answers the latter with a 500.
    head = bucket.head_object(**version(item))
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert close_to(head["ObjectLockRetainUntilDate"], item.retain_until)
    tags = bucket.get_object_tagging(**version(item))["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "ir-portal:incident": incident.reference,
        "ir-portal:item": str(item.pk),
        "ir-portal:retention-class": item.retention_class,
    }
    stored = bucket.get_object(**version(item))["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == item.sha256
    (uploaded,) = item.custody.all()
    assert uploaded.action == CustodyAction.UPLOADED
    assert uploaded.to_location == f"s3://{BUCKET}/{item.key}?versionId={item.version_id}"


@pytest.mark.parametrize("chunk_size", [MiB, 3 * MiB + 7, 20 * MiB], ids=["1MiB", "odd", "whole"])
def test_a_file_over_one_part_goes_up_in_parts_with_the_lock_asked_for(
    bucket, incident, responder, chunk_size
):
    data = os.urandom(20 * MiB)
    store = s3_store()
    started = calls_to(store.s3, "CreateMultipartUpload")
    parts = calls_to(store.s3, "UploadPart")
    placement = services.placement_for(incident, "memory.lime")

    item = services.upload(
        Actor.for_user(responder), incident, chunks(data, chunk_size), placement, store=store
    )

    assert [len(p["Body"]) for p in parts] == [PART_SIZE, PART_SIZE, 20 * MiB - 2 * PART_SIZE]
    # The lock is asked for when the upload starts, as AWS applies it on completion.
    assert started[0]["ObjectLockMode"] == "GOVERNANCE"
    assert started[0]["ObjectLockRetainUntilDate"] == item.retain_until
    assert item.sha256 == hashlib.sha256(data).hexdigest() and item.size == len(data)
    stored = hashlib.sha256()
    for chunk in bucket.get_object(**version(item))["Body"].iter_chunks(MiB):
        stored.update(chunk)
    assert stored.hexdigest() == item.sha256
    assert bucket.head_object(**version(item))["ObjectLockMode"] == "GOVERNANCE"


def test_s3_itself_refuses_to_delete_a_locked_version(bucket, incident, responder, lead):
    item = upload(incident, responder, b"evidence")

    with pytest.raises(ClientError) as refused:
        bucket.delete_object(**version(item))
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(StateConflict, match="retained until"):
        services.dispose(Actor.for_user(lead), item)

    assert bucket.get_object(**version(item))["Body"].read() == b"evidence"
    assert not item.custody.filter(action=CustodyAction.DISPOSED).exists()


def test_in_compliance_mode_not_even_a_governance_bypass_deletes(
    bucket, settings, incident, responder
):
    settings.EVIDENCE_OBJECT_LOCK_MODE = "COMPLIANCE"
    item = upload(incident, responder, b"evidence")

    assert bucket.head_object(**version(item))["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        bucket.delete_object(**version(item), BypassGovernanceRetention=True)
    assert bucket.get_object(**version(item))["Body"].read() == b"evidence"


def test_extending_retention_moves_the_lock(bucket, incident, responder, lead):
    item = upload(incident, responder, b"evidence")
    assert item.retention_class == "standard"
    before = bucket.head_object(**version(item))["ObjectLockRetainUntilDate"]
    assert close_to(before, item.retain_until)

    item = services.extend_retention(Actor.for_user(lead), item, retention_class="long")

    assert item.retain_until == item.acquired_at + timedelta(days=2555)
    head = bucket.head_object(**version(item))
    assert close_to(head["ObjectLockRetainUntilDate"], item.retain_until)
    assert item.custody.filter(action=CustodyAction.RETENTION_CHANGED).count() == 1
    # Shorter is refused by us; moto would accept it (it does not enforce that rule).
    with pytest.raises(StateConflict, match="only be extended"):
        services.extend_retention(Actor.for_user(lead), item, retention_class="short")


def test_a_legal_hold_shows_on_the_object_and_outlasts_a_governance_bypass(
    bucket, incident, responder, lead
):
    item = upload(incident, responder, b"evidence")
    actor = Actor.for_user(lead)

    item = services.set_legal_hold(actor, item, True, reason="litigation")
    assert bucket.get_object_legal_hold(**version(item))["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError, match="AccessDenied"):
        bucket.delete_object(**version(item), BypassGovernanceRetention=True)

    item = services.set_legal_hold(actor, item, False)
    assert bucket.get_object_legal_hold(**version(item))["LegalHold"]["Status"] == "OFF"
    assert list(item.custody.values_list("action", flat=True)) == [
        CustodyAction.UPLOADED,
        CustodyAction.LEGAL_HOLD_SET,
        CustodyAction.LEGAL_HOLD_LIFTED,
    ]


def test_a_delete_marker_hides_nothing_but_a_removed_version_is_missing(
    bucket, incident, responder
):
    """The item pins its version, and S3 never changes a version's bytes: a re-hash can
    only find the version there and intact, or gone. What it proves is that the version
    recorded still exists and hashes to what was measured on the way in."""
    item = upload(incident, responder, b"evidence")
    assert services.verify(item) == Integrity.INTACT

    # Deleting without a version id (allowed under a lock) hides the key, not the version.
    bucket.delete_object(Bucket=BUCKET, Key=item.key)
    with pytest.raises(ClientError, match="NoSuchKey"):
        bucket.get_object(Bucket=BUCKET, Key=item.key)
    assert services.verify(item) == Integrity.INTACT

    # Someone allowed to bypass governance removes the version itself.
    bucket.delete_object(**version(item), BypassGovernanceRetention=True)
    assert services.verify(item) == Integrity.MISSING
    item.refresh_from_db()
    assert item.integrity == Integrity.MISSING
    failed = item.custody.get(action=CustodyAction.INTEGRITY_FAILED)
    assert failed.details["expected"] == item.sha256
    assert TimelineEntry.objects.filter(
        incident=incident, kind=EntryKind.EVIDENCE_INTEGRITY_FAILED
    ).exists()


def test_a_download_reads_the_exact_version_recorded(bucket, incident, responder):
    item = upload(incident, responder, b"the original")
    # A later write under the same key makes a new version; the item keeps its own.
    bucket.put_object(Bucket=BUCKET, Key=item.key, Body=b"a replacement")
    actor = Actor.for_user(responder)

    token = services.issue_download_link(actor, item)
    downloaded, body = services.redeem_download_link(actor, token)

    assert downloaded.pk == item.pk
    assert b"".join(body) == b"the original"
    assert services.verify(item) == Integrity.INTACT
    assert item.custody.filter(action=CustodyAction.DOWNLOADED).count() == 1


def test_a_body_that_does_not_match_its_announced_hash_never_becomes_a_locked_version(
    bucket, incident, responder, api
):
    """The hash is checked before the multipart upload completes: once complete, the
    version would be locked and could not be taken back."""
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/evidence/upload/?name=x.bin&sha256={'0' * 64}",
        data=os.urandom(1000),
        content_type="application/octet-stream",
    )

    assert answer.status_code == 400, answer.content
    assert "sha256" in answer.json()
    assert not EvidenceItem.objects.exists()
    assert "Versions" not in bucket.list_object_versions(Bucket=BUCKET)
    assert "Uploads" not in bucket.list_multipart_uploads(Bucket=BUCKET)


def test_a_form_refused_after_its_file_streamed_leaves_no_version_behind(
    bucket, incident, responder
):
    """The page streams the file while it parses the form, before the CSRF check can read
    the token; the upload is completed (and so locked) only once the item is recorded."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    client.get(reverse("incident-evidence", args=[incident.reference]))
    url = reverse("incident-evidence-upload", args=[incident.reference])
    sent = SimpleUploadedFile("x.bin", os.urandom(PART_SIZE + 10))

    refused_by_csrf = client.post(url, {"file": sent, "kind": "file"})
    sent.seek(0)
    without_csrf_checks = Client()
    without_csrf_checks.force_login(responder)
    refused_by_form = without_csrf_checks.post(url, {"file": sent, "kind": "no-such-kind"})

    assert refused_by_csrf.status_code == 403
    assert refused_by_form.status_code == 400
    assert not EvidenceItem.objects.exists()
    assert "Versions" not in bucket.list_object_versions(Bucket=BUCKET)
    assert "Uploads" not in bucket.list_multipart_uploads(Bucket=BUCKET)
