"""Turn what detectors send into findings on one shape.

Understood, each alone or wrapped in an EventBridge event:
- GuardDuty findings: the event's `detail`, camelCase as EventBridge and the GuardDuty REST
  API write them, or PascalCase as boto3 and the CLI print them; also GetFindings answers.
- Security Hub findings in ASFF, several to an event (`detail.findings`), or GetFindings
  answers.
- CloudTrail records: "AWS API Call via CloudTrail" events, bare records, log files
  (`{"Records": [...]}`) and arrays of records.
- A small generic shape for other tools: `source`, `title`, `severity`, and optionally `id`,
  `type`, `description`, `account`, `region`, `resource`, `first_seen`, `raw`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from findings.choices import FindingSeverity, Source

# Field sizes: longer values are cut, never refused, so an odd detector cannot make a
# finding unstorable.
MAX_TITLE, MAX_TYPE, MAX_ID, MAX_DESCRIPTION = 500, 255, 512, 10_000
MAX_COUNT = 2**31 - 1

GUARDDUTY_FINDING = "GuardDuty Finding"
SECURITY_HUB_IMPORTED = "Security Hub Findings - Imported"
CLOUDTRAIL_API_CALL = "AWS API Call via CloudTrail"


class Unparseable(ValueError):
    """An event no parser understands; the message says what is wrong with it."""


@dataclass
class ParsedFinding:
    source: str
    provider_id: str
    type: str
    title: str
    severity: str
    account_id: str
    region: str
    first_seen: datetime
    last_seen: datetime
    raw: dict[str, Any]
    description: str = ""
    severity_score: float | None = None
    count: int = 1
    provider_updated_at: datetime | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.provider_id = str(self.provider_id)[:MAX_ID]
        self.type = str(self.type)[:MAX_TYPE]
        self.title = str(self.title)[:MAX_TITLE]
        self.description = str(self.description or "")[:MAX_DESCRIPTION]
        self.account_id = str(self.account_id or "")[:12]
        self.region = str(self.region or "")[:32]
        # The column is a 32-bit integer: a runaway counter must not make the finding unstorable.
        self.count = min(max(int(self.count), 1), MAX_COUNT)

    @property
    def primary_resource(self) -> str:
        """The resource findings are grouped by: the first one named."""
        return self.resources[0]["id"] if self.resources else ""


def parse_event(event: Any) -> list[ParsedFinding]:
    """Every finding in one received event; raises Unparseable with the reason."""
    if not isinstance(event, dict):
        raise Unparseable(f"an event is a JSON object, not {_json_type(event)}")
    try:
        return _dispatch(_storable(event))
    except Unparseable:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise Unparseable(f"malformed {_guess(event)}: {_describe(error)}") from error


def _dispatch(event: dict[str, Any]) -> list[ParsedFinding]:
    if "detail-type" in event:
        return _envelope(event)
    for key in ("findings", "Findings"):
        if isinstance(event.get(key), list):
            return [_finding_by_shape(item) for item in event[key]]
    if isinstance(event.get("Records"), list):
        return [cloudtrail(_cloudtrail_keys(record)) for record in event["Records"]]
    if isinstance(event.get("detail"), dict):
        # A partial EventBridge event: the envelope may carry the region the detail lacks.
        detail = dict(event["detail"])
        if event.get("region"):
            detail.setdefault("region", event["region"])
        return _dispatch(detail)
    return [_finding_by_shape(event)]


def _envelope(event: dict[str, Any]) -> list[ParsedFinding]:
    kind, detail = event["detail-type"], event.get("detail")
    if not isinstance(detail, dict):
        raise Unparseable(f"'{kind}' event without a detail object")
    if kind == GUARDDUTY_FINDING:
        return [guardduty(detail)]
    if kind == SECURITY_HUB_IMPORTED:
        findings = detail.get("findings")
        if not isinstance(findings, list) or not findings:
            raise Unparseable("Security Hub event without detail.findings")
        return [asff(finding) for finding in findings]
    if kind == CLOUDTRAIL_API_CALL:
        return [cloudtrail(detail)]
    if isinstance(detail.get("source"), str) and "title" in detail:
        return [generic(detail)]
    raise Unparseable(
        f"unknown detail-type {kind!r}; understood: {GUARDDUTY_FINDING!r}, "
        f"{SECURITY_HUB_IMPORTED!r}, {CLOUDTRAIL_API_CALL!r}, or a generic detail"
    )


def _finding_by_shape(item: Any) -> ParsedFinding:
    if not isinstance(item, dict):
        raise Unparseable(f"a finding is a JSON object, not {_json_type(item)}")
    if "AwsAccountId" in item and "ProductArn" in item:
        return asff(item)
    if {"Type", "Id", "Severity"} <= item.keys() and ({"AccountId", "Service"} & item.keys()):
        parsed = guardduty(_camel(item))
        # Kept as received: camelCasing also changes keys that are data ("AWS::S3::Bucket").
        parsed.raw = item
        return parsed
    if {"type", "id", "severity"} <= item.keys() and ({"accountId", "service"} & item.keys()):
        return guardduty(item)
    record = _cloudtrail_keys(item)
    if "eventName" in record and ("eventSource" in record or "eventID" in record):
        return cloudtrail(record)
    if isinstance(item.get("source"), str) and "title" in item:
        return generic(item)
    raise Unparseable(
        "not a GuardDuty finding, ASFF finding, CloudTrail record or generic event "
        f"(keys: {', '.join(sorted(item)[:12])})"
    )


def guardduty(finding: dict[str, Any]) -> ParsedFinding:
    service = finding.get("service") or {}
    score = float(finding["severity"])
    created = parse_time(finding["createdAt"])
    return ParsedFinding(
        source=Source.GUARDDUTY,
        provider_id=_required(finding, "id"),
        type=_required(finding, "type"),
        title=finding.get("title") or finding["type"],
        description=finding.get("description", ""),
        severity=guardduty_severity(score),
        severity_score=score,
        account_id=finding.get("accountId", ""),
        region=finding.get("region", ""),
        first_seen=parse_time(service.get("eventFirstSeen") or created),
        last_seen=parse_time(service.get("eventLastSeen") or finding.get("updatedAt") or created),
        count=int(service.get("count") or 1),
        provider_updated_at=parse_time(finding.get("updatedAt") or created),
        resources=_guardduty_resources(finding),
        raw=finding,
    )


def guardduty_severity(score: float) -> str:
    """GuardDuty's bands: 1.0-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0-10.0 critical."""
    if score >= 9.0:
        return FindingSeverity.CRITICAL
    if score >= 7.0:
        return FindingSeverity.HIGH
    if score >= 4.0:
        return FindingSeverity.MEDIUM
    if score >= 1.0:
        return FindingSeverity.LOW
    return FindingSeverity.INFORMATIONAL


# The resources each resourceType is about. Sample findings fill in every kind of detail
# (an S3 finding names instance i-99999999 too), and real S3 findings name the caller's key.
_GUARDDUTY_SUBJECTS = {
    "Instance": {"AWS::EC2::Instance"},
    "AccessKey": {"AWS::IAM::User", "AWS::IAM::AccessKey"},
    "S3Bucket": {"AWS::S3::Bucket"},
    "EKSCluster": {"AWS::EKS::Cluster"},
}


def _guardduty_resources(finding: dict[str, Any]) -> list[dict[str, Any]]:
    resource, region = finding.get("resource") or {}, finding.get("region", "")
    kind = resource.get("resourceType", "")
    found: list[dict[str, Any]] = []
    if (instance := resource.get("instanceDetails")) and instance.get("instanceId"):
        tags = {t.get("key"): t.get("value") for t in instance.get("tags") or []}
        found.append(_resource("AWS::EC2::Instance", instance["instanceId"], region, tags))
    if key := resource.get("accessKeyDetails"):
        if key.get("userName"):
            found.append(_resource("AWS::IAM::User", key["userName"], region))
        if key.get("accessKeyId"):
            found.append(_resource("AWS::IAM::AccessKey", key["accessKeyId"], region))
    for bucket in resource.get("s3BucketDetails") or []:
        if bucket.get("name"):
            tags = {t.get("key"): t.get("value") for t in bucket.get("tags") or []}
            found.append(_resource("AWS::S3::Bucket", bucket["name"], region, tags))
    if (cluster := resource.get("eksClusterDetails")) and cluster.get("name"):
        found.append(_resource("AWS::EKS::Cluster", cluster["name"], region))
    if not found and kind:
        # No resource named (an attack sequence, or a kind not read here): the finding
        # stands for itself, so unrelated findings of one kind are not grouped together.
        found.append(_resource(f"GuardDuty::{kind}", finding.get("arn") or finding["id"], region))
    subjects = _GUARDDUTY_SUBJECTS.get(kind, set())
    return sorted(found, key=lambda r: r["type"] not in subjects)  # stable: subject first


def asff(finding: dict[str, Any]) -> ParsedFinding:
    severity = finding.get("Severity") or {}
    label = str(severity.get("Label") or "").lower()
    normalized = severity.get("Normalized")
    if label not in FindingSeverity.values:
        label = asff_severity(float(normalized if normalized is not None else 0))
    types = finding.get("Types") or []
    created = parse_time(_required(finding, "CreatedAt"))
    resources = [
        _resource(r.get("Type", ""), r.get("Id", ""), r.get("Region", ""), r.get("Tags") or {})
        for r in finding.get("Resources") or []
        if r.get("Id")
    ]
    return ParsedFinding(
        source=Source.SECURITY_HUB,
        provider_id=_required(finding, "Id"),
        type=types[0] if types else finding.get("GeneratorId", "unknown"),
        title=_required(finding, "Title"),
        description=finding.get("Description", ""),
        severity=label,
        severity_score=float(normalized) if normalized is not None else None,
        account_id=_required(finding, "AwsAccountId"),
        region=finding.get("Region") or (resources[0]["region"] if resources else ""),
        first_seen=parse_time(finding.get("FirstObservedAt") or created),
        last_seen=parse_time(finding.get("LastObservedAt") or finding.get("UpdatedAt") or created),
        count=1,
        provider_updated_at=parse_time(finding.get("UpdatedAt") or created),
        resources=resources,
        raw=finding,
    )


def asff_severity(normalized: float) -> str:
    """ASFF's Normalized bands: 0 informational, 1-39 low, 40-69 medium, 70-89 high, 90+."""
    if normalized >= 90:
        return FindingSeverity.CRITICAL
    if normalized >= 70:
        return FindingSeverity.HIGH
    if normalized >= 40:
        return FindingSeverity.MEDIUM
    if normalized >= 1:
        return FindingSeverity.LOW
    return FindingSeverity.INFORMATIONAL


def cloudtrail(record: dict[str, Any]) -> ParsedFinding:
    event_source = record.get("eventSource", "")
    name = _required(record, "eventName")
    identity = record.get("userIdentity") or {}
    who = identity.get("arn") or identity.get("userName") or identity.get("type") or "unknown"
    service = event_source.split(".")[0] or "aws"
    failed = f" (failed: {record['errorCode']})" if record.get("errorCode") else ""
    # Records that went through other tools may have lost their id or time. They are kept:
    # the content stands in for the id, and the time received for the time of the call.
    try:
        when, description = parse_time(record.get("eventTime")), ""
    except ValueError:
        when, description = datetime.now(UTC), "eventTime missing or unreadable; time received used"
    return ParsedFinding(
        source=Source.CLOUDTRAIL,
        provider_id=record.get("eventID") or _content_id(record),
        description=description,
        type=f"{service}:{name}",
        title=f"{name} by {who}{failed}",
        severity=FindingSeverity.INFORMATIONAL,
        account_id=record.get("recipientAccountId") or identity.get("accountId", ""),
        region=record.get("awsRegion", ""),
        first_seen=when,
        last_seen=when,
        provider_updated_at=when,
        resources=_cloudtrail_resources(record),
        raw=record,
    )


# requestParameters keys that name the resource a call acted on.
_CLOUDTRAIL_TARGETS = {
    "instanceId": "AWS::EC2::Instance",
    "bucketName": "AWS::S3::Bucket",
    "userName": "AWS::IAM::User",
    "roleName": "AWS::IAM::Role",
    "accessKeyId": "AWS::IAM::AccessKey",
    "groupId": "AWS::EC2::SecurityGroup",
    "snapshotId": "AWS::EC2::Snapshot",
    "name": "AWS::CloudTrail::Trail",
    "functionName": "AWS::Lambda::Function",
}


_CLOUDTRAIL_KEYS = {
    key.lower(): key
    for key in [
        "eventID",
        "eventName",
        "eventSource",
        "eventTime",
        "eventType",
        "eventVersion",
        "awsRegion",
        "userIdentity",
        "recipientAccountId",
        "requestParameters",
        "responseElements",
        "resources",
        "errorCode",
        "errorMessage",
        "sourceIPAddress",
        "userAgent",
    ]
}


def _cloudtrail_keys(item: dict[str, Any]) -> dict[str, Any]:
    """Records some log pipelines lower-case (`eventid`), with CloudTrail's own key names."""
    if "eventName" in item or "eventname" not in item:
        return item
    return {_CLOUDTRAIL_KEYS.get(key, key): value for key, value in item.items()}


def _cloudtrail_resources(record: dict[str, Any]) -> list[dict[str, Any]]:
    region = record.get("awsRegion", "")
    found = [
        _resource(r.get("type", ""), r.get("ARN") or r.get("arn", ""), region)
        for r in record.get("resources") or []
        if isinstance(r, dict) and (r.get("ARN") or r.get("arn"))
    ]
    parameters = record.get("requestParameters")
    if isinstance(parameters, dict):
        for key, kind in _CLOUDTRAIL_TARGETS.items():
            value = parameters.get(key)
            if isinstance(value, str) and value:
                found.append(_resource(kind, value, region))
        items = (parameters.get("instancesSet") or {}).get("items") or []
        found += [
            _resource("AWS::EC2::Instance", item["instanceId"], region)
            for item in items
            if isinstance(item, dict) and item.get("instanceId")
        ]
    if not found and (identity_arn := (record.get("userIdentity") or {}).get("arn")):
        found.append(_resource("AWS::IAM::Principal", identity_arn, region))
    return found


_LABELS = {label: label for label in FindingSeverity.values} | {"info": "informational"}


def generic(event: dict[str, Any]) -> ParsedFinding:
    severity = event.get("severity", "medium")
    if isinstance(severity, int | float) and not isinstance(severity, bool):
        label = asff_severity(float(severity))
    elif str(severity).lower() in _LABELS:
        label = _LABELS[str(severity).lower()]
    else:
        raise Unparseable(
            f"severity {severity!r}: give a number 0-100 "
            f"or one of {', '.join(FindingSeverity.values)}"
        )
    seen = parse_time(event["first_seen"]) if event.get("first_seen") else datetime.now(UTC)
    resource = event.get("resource")
    resources = []
    if isinstance(resource, str) and resource:
        resources = [_resource("", resource, event.get("region", ""))]
    elif isinstance(resource, dict) and resource.get("id"):
        resources = [
            _resource(
                resource.get("type", ""),
                resource["id"],
                event.get("region", ""),
                resource.get("tags") or {},
            )
        ]
    source = str(event["source"])[:64]
    # Without an id of its own, the event's content is its identity: the same event sent
    # twice is the same finding.
    provider_id = event.get("id") or _content_id(event)
    return ParsedFinding(
        source=Source.OTHER,
        provider_id=f"{source}:{provider_id}",
        type=event.get("type") or f"{source}:{event['title']}",
        title=event["title"],
        description=event.get("description", ""),
        severity=label,
        severity_score=float(severity) if isinstance(severity, int | float) else None,
        account_id=event.get("account", ""),
        region=event.get("region", ""),
        first_seen=seen,
        last_seen=seen,
        resources=resources,
        raw=event,
    )


def _content_id(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime:
    """ISO 8601 (with 'Z', a space, or nanoseconds) or epoch milliseconds, as aware UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    elif isinstance(value, str) and value:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    else:
        raise ValueError(f"not a time: {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _resource(kind: str, identifier: str, region: str, tags: Any = None) -> dict[str, Any]:
    if isinstance(tags, list):  # [{"Key": k, "Value": v}] as AWS APIs write tags
        tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
    clean_tags = {str(k)[:128]: str(v)[:256] for k, v in (tags or {}).items() if k is not None}
    return {
        "type": str(kind)[:128],
        "id": str(identifier)[:2048],
        "region": str(region or "")[:32],  # as long as an incident's resources take
        "tags": clean_tags,
    }


def _camel(value: Any) -> Any:
    """PascalCase keys (boto3, the CLI) to camelCase (EventBridge, the REST API)."""
    if isinstance(value, dict):
        return {
            (k[:1].lower() + k[1:] if isinstance(k, str) else k): _camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def _storable(event: dict[str, Any]) -> dict[str, Any]:
    """The event with NUL characters replaced: PostgreSQL stores none, in text or in JSON.
    NaN and Infinity, which Python's json reads but JSON has not, are refused.

    Most events have neither; one pass of the C encoder says so far faster than walking
    the event in Python.
    """
    try:
        text = json.dumps(event, allow_nan=False)
    except ValueError:
        return _scrubbed(event)  # raises for the NaN or Infinity, naming it
    return _scrubbed(event) if "\\u0000" in text else event


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise Unparseable(f"{value} is not a JSON number; send finite numbers")
    return value


def _required(data: dict[str, Any], key: str) -> Any:
    value = data.get(key)
    if value in (None, ""):
        raise Unparseable(f"{_guess(data)} without {key!r}")
    return value


def _guess(data: dict[str, Any]) -> str:
    if "AwsAccountId" in data:
        return "Security Hub finding"
    if "eventID" in data or "eventName" in data:
        return "CloudTrail record"
    if "detail-type" in data:
        return f"'{data['detail-type']}' event"
    if "accountId" in data or "AccountId" in data:
        return "GuardDuty finding"
    return "event"


def _json_type(value: Any) -> str:
    """What JSON calls the value: the sender wrote JSON, not Python ("NoneType")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing {error.args[0]!r}"
    return str(error) or type(error).__name__
