"""Snapshot evidence kept in the security account: verified by its state there, flagged
once gone or in error, deleted there when disposed of, never before its time or under hold.

moto plays the security account; it cannot put a snapshot in error state, so Stubber
answers DescribeSnapshots with AWS's real shape for that one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from django.core.management import CommandError, call_command

from cases.choices import EntryKind
from cases.models import TimelineEntry
from evidence import services, snapshots
from evidence.choices import CustodyAction, EvidenceKind, Integrity, StoreKind
from evidence.models import EvidenceItem
from evidence.tasks import verify_all
from evidence.tests.test_s3_store import REGION, SECURITY_ACCOUNT
from evidence.tests.test_s3_store import security_account as security_account
from irportal.actors import Actor
from irportal.errors import StateConflict
from playbooks.aws import session_client, session_for
from playbooks.models import CloudAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def security_ec2(security_account: CloudAccount) -> Any:
    """EC2 in the security account, where evidence snapshots are copied to."""
    return session_client(session_for(security_account, "tests"), "ec2", REGION)


def snapshot_item(incident: Any, lead: Any, snapshot_id: str) -> EvidenceItem:
    return services.record_acquired(
        Actor.for_user(lead),
        incident,
        kind=EvidenceKind.DISK_SNAPSHOT,
        name=f"Snapshot {snapshot_id}",
        store=StoreKind.EBS_SNAPSHOT,
        snapshot_id=snapshot_id,
        account_id=SECURITY_ACCOUNT,
        region=REGION,
    )


@pytest.fixture
def kept_snapshot(security_ec2: Any, incident: Any, lead: Any) -> EvidenceItem:
    volume = security_ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    snapshot_id = security_ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    return snapshot_item(incident, lead, snapshot_id)


def exists(ec2: Any, snapshot_id: str) -> bool:
    try:
        ec2.describe_snapshots(SnapshotIds=[snapshot_id])
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
        return False
    return True


def test_disposal_deletes_the_snapshot_in_the_security_account(kept_snapshot, security_ec2, lead):
    item, actor = kept_snapshot, Actor.for_user(lead)
    with pytest.raises(StateConflict, match="retained until"):
        services.dispose(actor, item)
    services.set_legal_hold(actor, item, True, reason="litigation")

    with time_machine.travel(item.retain_until + timedelta(days=1)):
        with pytest.raises(StateConflict, match="under legal hold"):
            services.dispose(actor, item)
        assert exists(security_ec2, item.snapshot_id)

        services.set_legal_hold(actor, item, False)
        services.dispose(actor, item, reason="retention ended")

    assert not exists(security_ec2, item.snapshot_id)
    item.refresh_from_db()
    assert item.disposed_at is not None
    disposed = item.custody.get(action=CustodyAction.DISPOSED)
    assert disposed.from_location == f"ebs:{SECURITY_ACCOUNT}/{REGION}/{item.snapshot_id}"
    assert disposed.details["snapshot_deleted"] is True
    assert TimelineEntry.objects.filter(
        incident=item.incident, kind=EntryKind.EVIDENCE_DISPOSED
    ).exists()


def test_a_snapshot_is_verified_by_its_state_and_flagged_once_gone(kept_snapshot, security_ec2):
    item = kept_snapshot

    assert verify_all() == 0

    item.refresh_from_db()
    assert item.integrity == Integrity.INTACT
    verified = item.custody.get(action=CustodyAction.VERIFIED)
    assert verified.details["snapshot_state"] == "completed"
    assert "size and SHA-256 do not apply" in verified.details["hash"]
    assert verified.sha256 == ""

    security_ec2.delete_snapshot(SnapshotId=item.snapshot_id)
    with pytest.raises(CommandError, match=f"#{item.pk} .*: missing from the store"):
        call_command("verify_evidence", item.incident.reference)

    item.refresh_from_db()
    assert item.integrity == Integrity.MISSING
    failed = item.custody.get(action=CustodyAction.INTEGRITY_FAILED)
    assert "no longer exists" in failed.details["detail"]
    assert TimelineEntry.objects.filter(
        incident=item.incident, kind=EntryKind.EVIDENCE_INTEGRITY_FAILED
    ).exists()


def test_a_snapshot_in_error_state_is_flagged(incident, lead, monkeypatch):
    item = snapshot_item(incident, lead, "snap-0123456789abcdef0")
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")
    ec2 = session.client("ec2", region_name=REGION)
    monkeypatch.setattr(snapshots, "ec2_for", lambda item, actor: ec2)
    in_error = {
        "SnapshotId": item.snapshot_id,
        "VolumeId": "vol-0123456789abcdef0",
        "State": "error",
        "StateMessage": "Snapshot creation failed",
        "Progress": "37%",
        "OwnerId": SECURITY_ACCOUNT,
        "VolumeSize": 8,
        "Encrypted": True,
    }

    with Stubber(ec2) as stubbed:
        stubbed.add_response(
            "describe_snapshots", {"Snapshots": [in_error]}, {"SnapshotIds": [item.snapshot_id]}
        )
        assert services.verify(item) == Integrity.SNAPSHOT_ERROR

    item.refresh_from_db()
    assert item.integrity_failed
    failed = item.custody.get(action=CustodyAction.INTEGRITY_FAILED)
    assert "Snapshot creation failed" in failed.details["detail"]
