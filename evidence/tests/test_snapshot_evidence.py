"""Snapshot evidence kept in the security account: deleted there when disposed of, never
before its time or under hold. moto plays the security account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from botocore.exceptions import ClientError

from cases.choices import EntryKind
from cases.models import TimelineEntry
from evidence import services
from evidence.choices import CustodyAction, EvidenceKind, StoreKind
from evidence.models import EvidenceItem
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
