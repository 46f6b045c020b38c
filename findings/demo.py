"""Synthetic detector events in the shapes AWS sends, for the demo, tests and benchmarks.

Written for this project from the published event formats; no third-party sample is copied.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

DEMO_ACCOUNT = "111122223333"
DEMO_REGION = "eu-west-1"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def guardduty_event(
    finding_type: str,
    severity: float,
    *,
    instance_id: str | None = None,
    access_key: tuple[str, str] | None = None,
    bucket: str | None = None,
    finding_id: str | None = None,
    count: int = 1,
    first_seen: datetime | None = None,
    account: str = DEMO_ACCOUNT,
    region: str = DEMO_REGION,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An EventBridge 'GuardDuty Finding' event about one instance, access key or bucket."""
    now = datetime.now(UTC)
    first_seen = first_seen or now - timedelta(minutes=10)
    finding_id = finding_id or uuid.uuid4().hex
    tag_list = [{"key": k, "value": v} for k, v in (tags or {}).items()]
    resource: dict[str, Any]
    if instance_id:
        resource = {
            "resourceType": "Instance",
            "instanceDetails": {
                "instanceId": instance_id,
                "instanceType": "t3.medium",
                "tags": tag_list,
            },
        }
    elif access_key:
        user, key = access_key
        resource = {
            "resourceType": "AccessKey",
            "accessKeyDetails": {"userName": user, "accessKeyId": key, "userType": "IAMUser"},
        }
    else:
        resource = {
            "resourceType": "S3Bucket",
            "s3BucketDetails": [
                {"name": bucket or "demo-bucket", "type": "Destination", "tags": tag_list}
            ],
        }
    target = instance_id or (access_key[1] if access_key else bucket)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": account,
        "time": _time(now),
        "region": region,
        "resources": [],
        "detail": {
            "schemaVersion": "2.0",
            "accountId": account,
            "region": region,
            "partition": "aws",
            "id": finding_id,
            "arn": f"arn:aws:guardduty:{region}:{account}:detector/demo/finding/{finding_id}",
            "type": finding_type,
            "resource": resource,
            "service": {
                "serviceName": "guardduty",
                "detectorId": "demo",
                "archived": False,
                "count": count,
                "eventFirstSeen": _time(first_seen),
                "eventLastSeen": _time(now),
                "resourceRole": "TARGET",
            },
            "severity": severity,
            "createdAt": _time(first_seen),
            "updatedAt": _time(now),
            "title": f"{finding_type} involving {target}",
            "description": f"GuardDuty reports {finding_type} for {target}.",
        },
    }


def demo_stream() -> list[dict[str, Any]]:
    """What a small estate's detectors might send in an afternoon."""
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    return [
        guardduty_event(
            "CryptoCurrency:EC2/BitcoinTool.B!DNS",
            8.0,
            instance_id="i-0d3m0web00000001",
            first_seen=hour_ago,
            tags={"Name": "web-1", "env": "production"},
        ),
        guardduty_event(
            "Impact:EC2/BitcoinDomainRequest.Reputation",
            8.0,
            instance_id="i-0d3m0web00000001",
            first_seen=hour_ago - timedelta(minutes=20),
            tags={"Name": "web-1", "env": "production"},
        ),
        guardduty_event(
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            8.0,
            access_key=("ci-deployer", "AKIADEMO0000000KEY01"),
        ),
        guardduty_event(
            "Policy:S3/BucketBlockPublicAccessDisabled", 5.0, bucket="demo-customer-exports"
        ),
        guardduty_event(
            "Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0d3m0bastion0001"
        ),
        guardduty_event(
            "Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-0d3m0bastion0002"
        ),
        {
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.cloudtrail",
            "detail": {
                "eventVersion": "1.08",
                "eventID": str(uuid.uuid4()),
                "eventTime": _time(datetime.now(UTC) - timedelta(minutes=5)),
                "eventSource": "cloudtrail.amazonaws.com",
                "eventName": "StopLogging",
                "awsRegion": DEMO_REGION,
                "recipientAccountId": DEMO_ACCOUNT,
                "userIdentity": {
                    "type": "IAMUser",
                    "arn": f"arn:aws:iam::{DEMO_ACCOUNT}:user/ci-deployer",
                    "accountId": DEMO_ACCOUNT,
                    "userName": "ci-deployer",
                },
                "requestParameters": {"name": "org-trail"},
            },
        },
    ]
