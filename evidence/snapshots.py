"""EBS snapshot evidence where it is kept: in the account it was copied into (the security
account), reached through that account's role as the collection actions reach it, with a
session name that names the incident and who acts."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from evidence.models import EvidenceItem
from irportal.actors import Actor
from playbooks.aws import session_client, session_for, session_name
from playbooks.models import CloudAccount

NOT_FOUND = "InvalidSnapshot.NotFound"


def ec2_for(item: EvidenceItem, actor: Actor) -> Any:
    """An EC2 client in the account and region that hold the item's snapshot."""
    account = CloudAccount.objects.filter(account_id=item.account_id, enabled=True).first()
    if account is None:
        raise LookupError(
            f"account {item.account_id}, which holds {item.snapshot_id}, is not registered "
            "(or is disabled)"
        )
    session = session_for(account, session_name(item.incident.reference, actor.name))
    return session_client(session, "ec2", item.region)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def describe(ec2: Any, snapshot_id: str) -> dict[str, Any] | None:
    """The snapshot as EC2 describes it, or None when it no longer exists."""
    try:
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except ClientError as error:
        if _code(error) == NOT_FOUND:
            return None
        raise
    return found[0] if found else None


def delete(ec2: Any, snapshot_id: str) -> bool:
    """Delete the snapshot; False when it was gone already."""
    try:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    except ClientError as error:
        if _code(error) == NOT_FOUND:
            return False
        raise
    return True
