"""Response actions that collect evidence from AWS: EBS snapshots copied into the security
account, CloudTrail events exported as JSON lines, S3 objects copied into the evidence store.

Each records what it collected as evidence items acquired by its action run, each with a
custody event naming where it came from and where it went. Each looks before it acts: a
snapshot already copied for the incident, or an object already collected, is not collected
again, whichever action run did it; a retry of the same run (its worker died) finishes what
the first attempt started. Registered into the playbooks registry by `EvidenceConfig.ready`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from cases.models import Incident
from evidence import services
from evidence.choices import EvidenceKind, StoreKind
from evidence.models import EvidenceItem
from evidence.stores import PART_SIZE, EvidenceStore, default_store, put
from playbooks.actions.base import Action, ActionInputs, Outcome, register
from playbooks.actions.ec2 import ACTION_RUN_TAG
from playbooks.actions.tagging import INCIDENT_TAG
from playbooks.aws import AwsContext, session_for, session_name
from playbooks.models import ActionRun, CloudAccount

logger = logging.getLogger(__name__)

SOURCE_SNAPSHOT_TAG = "ir-portal:source-snapshot"
SOURCE_ACCOUNT_TAG = "ir-portal:source-account"
INSTANCE_TAG = "ir-portal:instance"  # as `ec2_snapshot_volumes` tags its snapshots

# How long `evidence_copy_snapshots` waits for a pending source snapshot: well inside the
# engine's lease (PLAYBOOK_ACTION_LEASE, 300 s by default).
SNAPSHOT_WAIT_DELAY = 15
SNAPSHOT_WAIT_ATTEMPTS = 12


# ---------------------------------------------------------------------------------------
# Shared by the three actions


def action_run_of(ctx: AwsContext) -> ActionRun:
    """The action run acting: who asked is who acquired the evidence."""
    if ctx.action_run_id is None:
        raise ValueError("evidence is collected by an action run; this context has none")
    return ActionRun.objects.select_related("incident").get(pk=ctx.action_run_id)


def security_account() -> CloudAccount:
    found = CloudAccount.objects.filter(is_security_account=True, enabled=True).first()
    if found is None:
        raise LookupError("no security account is registered (or it is disabled)")
    return found


def security_context(ctx: AwsContext, account: CloudAccount) -> AwsContext:
    """Clients in the security account, in the target's region, for the same incident and
    action run, noting their request ids with the target's."""
    asked_by = action_run_of(ctx).actor_name
    session = session_for(account, session_name(ctx.incident_reference, asked_by))
    context = AwsContext(
        session,
        ctx.region,
        incident_reference=ctx.incident_reference,
        action_run_id=ctx.action_run_id,
    )
    context.request_ids = ctx.request_ids
    return context


def record_once(
    incident: Incident, find: dict[str, Any], record: Callable[[], EvidenceItem]
) -> tuple[EvidenceItem, bool]:
    """The incident's item matching `find`, or the one `record` makes: (item, made now).
    The incident's row is locked first (as every engine transaction does), so two action
    runs collecting the same thing at once record it once."""
    with transaction.atomic():
        list(Incident.objects.select_for_update().filter(pk=incident.pk).values_list("pk"))
        found = EvidenceItem.objects.filter(incident=incident, **find).first()
        if found is not None:
            return found, False
        return record(), True


def _tags(tags: Iterable[dict[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _one_of(data: dict[str, Any], names: tuple[str, str]) -> None:
    given = [name for name in names if data.get(name)]
    if len(given) != 1:
        raise serializers.ValidationError(f"give {names[0]} or {names[1]}, one of the two")


# ---------------------------------------------------------------------------------------
# EBS snapshots


class CopySnapshotsInputs(ActionInputs):
    instance_id = serializers.RegexField(
        r"^i-[0-9a-f]{8,17}$",
        required=False,
        help_text="Copy the incident's snapshots of this instance (as ec2_snapshot_volumes "
        "tags them).",
    )
    snapshot_ids = serializers.ListField(
        child=serializers.RegexField(r"^snap-[0-9a-f]{8,17}$"),
        required=False,
        allow_empty=False,
        max_length=100,
        help_text="Or copy these snapshots.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        _one_of(data, ("instance_id", "snapshot_ids"))
        return data


@register
class CopySnapshots(Action):
    """Copy EBS snapshots into the security account and record each copy as evidence.

    Each source snapshot is shared with the security account (createVolumePermission),
    then copied there by the security account's role into the same region, encrypted with
    EVIDENCE_KMS_KEY_ID when one is set; the copy is tagged with the incident, the action
    run and its source, and found again by those tags: a source already copied for the
    incident is not copied again. The share stays: AWS reads the source while the copy is
    pending. A source encrypted with a customer managed key needs that key shared with
    the security account as well; one encrypted with the AWS managed key cannot be shared.

    moto 5.2.5 copies a snapshot only within one account (it looks for the source in the
    copying account), so the cross-account copy is tested with botocore's Stubber on the
    security account's side, and the whole path on moto with one account in both roles.
    """

    name = "evidence_copy_snapshots"
    title = "Copy EBS snapshots into the security account as evidence"
    target_kind = "instance"
    target_input = "instance_id"
    inputs = CopySnapshotsInputs

    def target(self, inputs: dict[str, Any]) -> str:
        return inputs.get("instance_id") or ", ".join(inputs["snapshot_ids"])

    def describe(self, inputs: dict[str, Any]) -> str:
        if inputs.get("instance_id"):
            what = f"the incident's snapshots of {inputs['instance_id']}"
        else:
            what = self.target(inputs)
        return f"{self.title}: {what} in {inputs['account_id']}/{inputs['region']}"

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        security = security_account()
        sources = _sources(ctx, inputs)
        copies = _copies(security_context(ctx, security), [s["id"] for s in sources])
        return {"security_account": security.account_id, "snapshots": sources, "copies": copies}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        target = self.target(inputs)
        if not state["snapshots"]:
            return Outcome(
                False,
                f"No snapshot of {target} tagged with {ctx.incident_reference} to copy",
                before=state,
                outputs={"evidence": [], "copies": {}},
            )
        security = security_account()
        copying = security_context(ctx, security)
        run = action_run_of(ctx)
        copies, recorded = dict(state["copies"]), []
        # Completed sources first: a pending one may outlast the wait, and what was copied
        # by then stays copied and recorded for the next attempt.
        ordered = sorted(state["snapshots"], key=lambda s: s["state"] != "completed")
        for source in ordered:
            if source["id"] not in copies:
                _await_completed(ctx, source)
                _share(ctx, source, security.account_id)
                copies[source["id"]] = _copy(copying, source)
            recorded.append(_record_copy(run, source, copies[source["id"]], security, ctx.region))

        made = [item for item, new in recorded if new]
        listed = ", ".join(f"{s} → {c}" for s, c in sorted(copies.items()))
        return Outcome(
            bool(made) or len(copies) > len(state["copies"]),
            f"Copied {len(copies)} snapshot(s) of {target} into the security account "
            f"{security.account_id}: {listed}",
            before=state,
            outputs={"evidence": [item.pk for item, _ in recorded], "copies": copies},
        )


def _sources(ctx: AwsContext, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The snapshots to copy: those given, or the incident's of the instance; never a copy
    IR Portal made itself (with one account in both roles, copies carry the tags too)."""
    if inputs.get("snapshot_ids"):
        found = _snapshots(ctx, SnapshotIds=inputs["snapshot_ids"])
    else:
        found = _snapshots(
            ctx,
            OwnerIds=["self"],
            Filters=[
                {"Name": f"tag:{INCIDENT_TAG}", "Values": [ctx.incident_reference]},
                {"Name": f"tag:{INSTANCE_TAG}", "Values": [inputs["instance_id"]]},
            ],
        )
    return [
        _source(snapshot, inputs)
        for snapshot in sorted(found, key=lambda s: s["SnapshotId"])
        if SOURCE_SNAPSHOT_TAG not in _tags(snapshot.get("Tags", []))
    ]


def _source(snapshot: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    tags = _tags(snapshot.get("Tags", []))
    return {
        "id": snapshot["SnapshotId"],
        "account_id": snapshot.get("OwnerId") or inputs["account_id"],
        "volume_id": snapshot.get("VolumeId", ""),
        "volume_size_gib": snapshot.get("VolumeSize"),
        "state": snapshot.get("State", ""),
        "progress": snapshot.get("Progress", ""),
        "encrypted": bool(snapshot.get("Encrypted")),
        "kms_key_id": snapshot.get("KmsKeyId", ""),
        "started_at": snapshot["StartTime"].isoformat() if snapshot.get("StartTime") else "",
        "instance_id": tags.get(INSTANCE_TAG) or inputs.get("instance_id", ""),
        "device": tags.get("ir-portal:device", ""),
    }


def _copies(copying: AwsContext, source_ids: list[str]) -> dict[str, str]:
    """Copies of these sources already in the security account for this incident."""
    if not source_ids:
        return {}
    found = _snapshots(
        copying,
        OwnerIds=["self"],
        Filters=[
            {"Name": f"tag:{SOURCE_SNAPSHOT_TAG}", "Values": source_ids},
            {"Name": f"tag:{INCIDENT_TAG}", "Values": [copying.incident_reference]},
        ],
    )
    return {_tags(s["Tags"])[SOURCE_SNAPSHOT_TAG]: s["SnapshotId"] for s in found}


def _snapshots(ctx: AwsContext, **request: Any) -> list[dict[str, Any]]:
    pages = ctx("ec2").get_paginator("describe_snapshots").paginate(**request)
    return [snapshot for page in pages for snapshot in page["Snapshots"]]


def _await_completed(ctx: AwsContext, source: dict[str, Any]) -> None:
    """AWS copies only completed snapshots; one just taken may still be pending."""
    if source["state"] == "completed":
        return
    if source["state"] == "error":
        raise ValueError(f"{source['id']} failed (state error) and cannot be copied")
    try:
        ctx("ec2").get_waiter("snapshot_completed").wait(
            SnapshotIds=[source["id"]],
            WaiterConfig={"Delay": SNAPSHOT_WAIT_DELAY, "MaxAttempts": SNAPSHOT_WAIT_ATTEMPTS},
        )
    except WaiterError as error:
        seen = (error.last_response.get("Snapshots") or [{}])[0]
        raise ValueError(
            f"{source['id']} is still {seen.get('State', 'pending')} "
            f"({seen.get('Progress', '?')}); ask again once it has completed"
        ) from error


def _share(ctx: AwsContext, source: dict[str, Any], account_id: str) -> None:
    """Let the security account create volumes from (and so copy) the snapshot."""
    snapshot_id = source["id"]
    if source["account_id"] == account_id:
        return
    ec2 = ctx("ec2")
    permissions = ec2.describe_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission"
    )["CreateVolumePermissions"]
    if any(p.get("UserId") == account_id for p in permissions):
        return
    ec2.modify_snapshot_attribute(
        SnapshotId=snapshot_id,
        Attribute="createVolumePermission",
        OperationType="add",
        UserIds=[account_id],
    )


def _copy(copying: AwsContext, source: dict[str, Any]) -> str:
    """Start the copy in the security account. Tags go in the copy call itself, so a copy
    whose answer a dying worker never saw is still found by the next attempt."""
    tags = {
        INCIDENT_TAG: copying.incident_reference,
        ACTION_RUN_TAG: str(copying.action_run_id),
        SOURCE_SNAPSHOT_TAG: source["id"],
        SOURCE_ACCOUNT_TAG: source["account_id"],
        "ir-portal:volume": source["volume_id"],
    }
    if source["instance_id"]:
        tags[INSTANCE_TAG] = source["instance_id"]
    request: dict[str, Any] = {
        "SourceSnapshotId": source["id"],
        "SourceRegion": copying.region,
        "Description": f"IR Portal {copying.incident_reference}: evidence copy of "
        f"{source['id']} from {source['account_id']}",
        "TagSpecifications": [{"ResourceType": "snapshot", "Tags": _tag_list(tags)}],
    }
    if settings.EVIDENCE_KMS_KEY_ID:
        request.update(Encrypted=True, KmsKeyId=settings.EVIDENCE_KMS_KEY_ID)
    return str(copying("ec2").copy_snapshot(**request)["SnapshotId"])


def _snapshot_name(source: dict[str, Any]) -> str:
    """`Snapshot snap-… of vol-… (i-… /dev/sdf)`."""
    where = " ".join(part for part in (source["instance_id"], source["device"]) if part)
    return f"Snapshot {source['id']} of {source['volume_id'] or 'a volume'}" + (
        f" ({where})" if where else ""
    )


def _record_copy(
    run: ActionRun, source: dict[str, Any], copy_id: str, security: CloudAccount, region: str
) -> tuple[EvidenceItem, bool]:
    def record() -> EvidenceItem:
        return services.record_acquired(
            run.actor,
            run.incident,
            kind=EvidenceKind.DISK_SNAPSHOT,
            name=_snapshot_name(source),
            store=StoreKind.EBS_SNAPSHOT,
            source=f"arn:aws:ec2:{region}::snapshot/{source['id']}",
            description=f"Copy of {source['id']} taken from account {source['account_id']}",
            action_run=run,
            snapshot_id=copy_id,
            account_id=security.account_id,
            region=region,
            metadata={
                "source_snapshot_id": source["id"],
                "source_account_id": source["account_id"],
                "volume_id": source["volume_id"],
                "volume_size_gib": source["volume_size_gib"],
                "source_started_at": source["started_at"],
                "source_encrypted": source["encrypted"],
                "kms_key_id": settings.EVIDENCE_KMS_KEY_ID,
                "instance_id": source["instance_id"],
            },
            copied_from=f"ebs:{source['account_id']}/{region}/{source['id']}",
        )

    find = {
        "store": StoreKind.EBS_SNAPSHOT,
        "account_id": security.account_id,
        "snapshot_id": copy_id,
    }
    return record_once(run.incident, find, record)


# ---------------------------------------------------------------------------------------
# CloudTrail


class IsoDateTime(serializers.DateTimeField):
    """A date and time kept as ISO 8601 text: inputs are stored as JSON."""

    def to_internal_value(self, value: Any) -> Any:
        return super().to_internal_value(value).isoformat()


_ACCESS_KEY_ID = re.compile(r"^(?:AKIA|ASIA)[A-Z0-9]{16}$")


class CloudTrailInputs(ActionInputs):
    principal = serializers.CharField(
        max_length=2048,
        required=False,
        help_text="A user name, a role session name, an access key id or an IAM ARN.",
    )
    resource = serializers.CharField(
        max_length=2048,
        required=False,
        help_text="Or a resource name or ARN, as CloudTrail names it.",
    )
    start = IsoDateTime(help_text="The window's start (CloudTrail keeps 90 days).")
    end = IsoDateTime(help_text="The window's end.")
    max_events = serializers.IntegerField(
        min_value=1,
        max_value=100_000,
        default=20_000,
        help_text="Stop after this many; the manifest then says where the export stops.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        _one_of(data, ("principal", "resource"))
        if datetime.fromisoformat(data["start"]) >= datetime.fromisoformat(data["end"]):
            raise serializers.ValidationError({"end": "The window ends after it starts."})
        return data


@register
class ExportCloudTrail(Action):
    """Export the CloudTrail management events of a principal or a resource in a time
    window as JSON lines into the evidence store, with a manifest beside them.

    LookupEvents is read page by page and each event written as AWS returned it (its
    CloudTrailEvent text, newest first), streamed and hashed on the way into the store:
    memory stays flat. Two items are recorded: the lines, and a JSON manifest naming the
    query, the window, the count, the lines' SHA-256 and where the export stops when it
    reached `max_events`. LookupEvents allows 2 requests a second per account and region;
    botocore's retries absorb the throttling.

    moto 5.2.5 does not implement LookupEvents: the action is tested with botocore's Stubber
    answering with LookupEvents' real response shape, the evidence store being moto's S3.
    """

    name = "evidence_export_cloudtrail"
    title = "Export CloudTrail events as evidence"
    target_kind = "resource"
    target_input = "principal"
    inputs = CloudTrailInputs

    def target(self, inputs: dict[str, Any]) -> str:
        return str(inputs.get("principal") or inputs["resource"])

    def describe(self, inputs: dict[str, Any]) -> str:
        return (
            f"{self.title}: {self.target(inputs)} from {inputs['start']} to {inputs['end']} "
            f"in {inputs['account_id']}/{inputs['region']}"
        )

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        """What an earlier attempt of this action run exported already."""
        done = EvidenceItem.objects.filter(action_run_id=ctx.action_run_id)
        parts = dict(done.values_list("metadata__part", "pk"))
        return {"events_item": parts.get("events"), "manifest_item": parts.get("manifest")}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        run = action_run_of(ctx)
        store = default_store()
        if state["events_item"]:
            events = EvidenceItem.objects.get(pk=state["events_item"])
        else:
            events = _export_events(ctx, run, store, inputs)
        if state["manifest_item"]:
            manifest = EvidenceItem.objects.get(pk=state["manifest_item"])
        else:
            manifest = _write_manifest(run, store, events)

        summary = events.metadata["summary"]
        return Outcome(
            True,
            f"Exported {summary['count']} CloudTrail event(s) of {self.target(inputs)} "
            f"from {inputs['start']} to {inputs['end']}"
            + ("" if summary["complete"] else f" (stopped at {inputs['max_events']})"),
            before=state,
            outputs={
                "evidence": [events.pk, manifest.pk],
                "count": summary["count"],
                "sha256": events.sha256,
                "complete": summary["complete"],
            },
        )


def lookup_attribute(inputs: dict[str, Any]) -> dict[str, str]:
    """The one LookupAttribute LookupEvents takes for the principal or resource asked for."""
    if inputs.get("resource"):
        return {"AttributeKey": "ResourceName", "AttributeValue": inputs["resource"]}
    principal = str(inputs["principal"])
    if _ACCESS_KEY_ID.match(principal):
        return {"AttributeKey": "AccessKeyId", "AttributeValue": principal}
    # CloudTrail's user name is an IAM user's name or an assumed role's session name: the
    # last part of either ARN.
    if principal.startswith("arn:"):
        principal = principal.rsplit("/", 1)[-1]
    return {"AttributeKey": "Username", "AttributeValue": principal}


def _export_events(
    ctx: AwsContext, run: ActionRun, store: EvidenceStore, inputs: dict[str, Any]
) -> EvidenceItem:
    attribute = lookup_attribute(inputs)
    name = f"cloudtrail-{attribute['AttributeValue']}-{inputs['start']}-{inputs['end']}.jsonl"
    placement = services.placement_for(run.incident, name, content_type="application/x-ndjson")
    summary = {
        "query": {"api": "cloudtrail:LookupEvents", "lookup_attributes": [attribute]},
        "window": {"start": inputs["start"], "end": inputs["end"]},
        "account_id": inputs["account_id"],
        "region": inputs["region"],
        "order": "newest first, as LookupEvents returns them",
        "count": 0,
        "complete": True,
        "newest_event_time": None,
        "oldest_event_time": None,
    }
    lines = _event_lines(ctx, attribute, inputs, summary)
    stored = put(store, lines, placement)
    summary["sha256"] = stored.sha256
    return services.record_collected(
        run,
        stored,
        placement,
        store=store,
        kind=EvidenceKind.LOG_EXPORT,
        source=f"cloudtrail:{inputs['account_id']}/{inputs['region']}?"
        f"{attribute['AttributeKey']}={attribute['AttributeValue']}",
        description=f"CloudTrail events of {attribute['AttributeValue']} "
        f"from {inputs['start']} to {inputs['end']}",
        metadata={"part": "events", "summary": summary},
    )


def _event_lines(
    ctx: AwsContext, attribute: dict[str, str], inputs: dict[str, Any], summary: dict[str, Any]
) -> Iterator[bytes]:
    """Each event as one line of JSON, counting into `summary` as they pass."""
    pages = (
        ctx("cloudtrail")
        .get_paginator("lookup_events")
        .paginate(
            LookupAttributes=[attribute],
            StartTime=datetime.fromisoformat(inputs["start"]),
            EndTime=datetime.fromisoformat(inputs["end"]),
        )
    )
    for page in pages:
        for event in page["Events"]:
            if summary["count"] >= inputs["max_events"]:
                summary["complete"] = False
                return
            when = event["EventTime"].isoformat()
            summary["newest_event_time"] = summary["newest_event_time"] or when
            summary["oldest_event_time"] = when
            summary["count"] += 1
            yield _line(event)


def _line(event: dict[str, Any]) -> bytes:
    """The event as CloudTrail recorded it. Its text is compact JSON; a newline could only
    be whitespace between tokens (JSON strings escape theirs), so dropping one loses nothing."""
    raw = event.get("CloudTrailEvent")
    if raw is None:
        raw = json.dumps(event, default=str, sort_keys=True)
    return raw.replace("\n", "").encode() + b"\n"


def _write_manifest(run: ActionRun, store: EvidenceStore, events: EvidenceItem) -> EvidenceItem:
    manifest = {
        "format": "ir-portal.cloudtrail-export.v1",
        "incident": run.incident.reference,
        "action_run": run.pk,
        "exported_by": run.actor_name,
        "exported_at": timezone.now().isoformat(),
        **events.metadata["summary"],
        "events": {
            "evidence_item": events.pk,
            "location": events.location,
            "size": events.size,
            "sha256": events.sha256,
        },
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    placement = services.placement_for(
        run.incident, f"{events.name}.manifest.json", content_type="application/json"
    )
    stored = put(store, [body], placement)
    return services.record_collected(
        run,
        stored,
        placement,
        store=store,
        kind=EvidenceKind.LOG_EXPORT,
        source=events.location,
        description=f"Manifest of evidence #{events.pk}: query, window, count and SHA-256",
        metadata={"part": "manifest", "manifest_of": events.pk},
    )


# ---------------------------------------------------------------------------------------
# S3 objects


class CopyObjectsInputs(ActionInputs):
    bucket = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$", help_text="The source bucket."
    )
    keys = serializers.ListField(
        child=serializers.CharField(max_length=1024, trim_whitespace=False),
        required=False,
        allow_empty=False,
        max_length=1000,
        help_text="The objects to copy.",
    )
    prefix = serializers.CharField(
        max_length=1024, required=False, trim_whitespace=False, help_text="Or every key under it."
    )
    kind = serializers.ChoiceField(
        choices=[EvidenceKind.FILE, EvidenceKind.LOG_EXPORT],
        default=EvidenceKind.FILE,
        help_text="What the objects are (access logs: log_export).",
    )
    max_objects = serializers.IntegerField(
        min_value=1,
        max_value=10_000,
        default=1000,
        help_text="Refuse, copying nothing, when the prefix holds more.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        _one_of(data, ("keys", "prefix"))
        return data


@register
class CopyObjects(Action):
    """Copy S3 objects (access logs, files an attacker left) into the evidence store.

    Each object's current version is looked at first (version id, ETag, size), then read
    by that version (or, in an unversioned bucket, only while its ETag is unchanged) and
    streamed into the store, hashed on the way. An object already collected for the
    incident, same bucket, key and version (or ETag), is not copied again.
    """

    name = "evidence_copy_s3_objects"
    title = "Copy S3 objects into the evidence store"
    target_kind = "bucket"
    target_input = "bucket"
    inputs = CopyObjectsInputs

    def describe(self, inputs: dict[str, Any]) -> str:
        what = f"{len(inputs['keys'])} object(s)" if inputs.get("keys") else "the objects"
        under = f" under {inputs['prefix']}" if inputs.get("prefix") else ""
        return (
            f"{self.title}: {what} of s3://{inputs['bucket']}{under} "
            f"in {inputs['account_id']}/{inputs['region']}"
        )

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        bucket = inputs["bucket"]
        keys = inputs.get("keys") or _keys_under(ctx, bucket, inputs["prefix"], inputs)
        objects = [_object(ctx, bucket, key) for key in keys]
        recorded = {
            o["source"]: found.pk
            for o in objects
            if (found := _collected(ctx.incident_reference, o)) is not None
        }
        return {"objects": objects, "recorded": recorded}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        run = action_run_of(ctx)
        store = default_store()
        items: list[int] = []
        copied: list[str] = []
        for seen in state["objects"]:
            if seen["source"] in state["recorded"]:
                items.append(state["recorded"][seen["source"]])
                continue
            item, new = _copy_object(ctx, run, store, seen, inputs["kind"])
            items.append(item.pk)
            if new:
                copied.append(seen["key"])

        already = len(items) - len(copied)
        where = f"s3://{inputs['bucket']}" + (f"/{inputs['prefix']}" if "prefix" in inputs else "")
        return Outcome(
            bool(copied),
            f"Copied {len(copied)} object(s) from {where} into the evidence store"
            + (f"; {already} collected already" if already else ""),
            before={"objects": state["objects"]},
            outputs={"evidence": items, "copied": copied},
        )


def _keys_under(ctx: AwsContext, bucket: str, prefix: str, inputs: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for page in ctx("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
        if len(keys) > inputs["max_objects"]:
            raise ValueError(
                f"more than {inputs['max_objects']} objects under s3://{bucket}/{prefix}; "
                "narrow the prefix or raise max_objects"
            )
    return keys


def _object(ctx: AwsContext, bucket: str, key: str) -> dict[str, Any]:
    """The object's current version as S3 describes it, and the source it is recorded as."""
    try:
        head = ctx("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        # HEAD answers carry no error body: botocore can only say "404".
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise LookupError(f"s3://{bucket}/{key}: no such object (or bucket)") from error
        raise
    version_id = head.get("VersionId") or ""
    if version_id == "null":  # unversioned, or written before versioning was on
        version_id = ""
    return {
        "bucket": bucket,
        "key": key,
        "version_id": version_id,
        "etag": head["ETag"],
        "size": head["ContentLength"],
        "content_type": head.get("ContentType") or "application/octet-stream",
        "last_modified": head["LastModified"].isoformat(),
        "source": f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else ""),
    }


def _identity(seen: dict[str, Any]) -> dict[str, Any]:
    """What makes an object the same one: its source (bucket, key, version) and ETag, for
    a key overwritten in an unversioned bucket is another object."""
    return {"source": seen["source"], "metadata__source_etag": seen["etag"]}


def _collected(incident_reference: str, seen: dict[str, Any]) -> EvidenceItem | None:
    found = EvidenceItem.objects.filter(incident__reference=incident_reference, **_identity(seen))
    return found.first()


def _copy_object(
    ctx: AwsContext, run: ActionRun, store: EvidenceStore, seen: dict[str, Any], kind: str
) -> tuple[EvidenceItem, bool]:
    request = {"Bucket": seen["bucket"], "Key": seen["key"]}
    if seen["version_id"]:
        request["VersionId"] = seen["version_id"]
    else:
        request["IfMatch"] = seen["etag"]
    body = ctx("s3").get_object(**request)["Body"]
    name = seen["key"].rsplit("/", 1)[-1] or seen["key"]
    placement = services.placement_for(run.incident, name, content_type=seen["content_type"])
    stored = put(store, body.iter_chunks(PART_SIZE), placement)
    if stored.size != seen["size"]:
        logger.error(
            "evidence.orphaned incident=%s store=%s key=%s reason=short_read",
            run.incident.reference,
            stored.store,
            stored.key,
        )
        raise ValueError(f"{seen['source']}: read {stored.size} bytes of {seen['size']}")

    def record() -> EvidenceItem:
        return services.record_collected(
            run,
            stored,
            placement,
            store=store,
            kind=kind,
            source=seen["source"],
            copied_from=seen["source"],
            description=f"Copy of {seen['source']}",
            metadata={
                "source_bucket": seen["bucket"],
                "source_key": seen["key"],
                "source_version_id": seen["version_id"],
                "source_etag": seen["etag"],
                "source_last_modified": seen["last_modified"],
                "source_account_id": run.account.account_id if run.account else "",
                "source_region": run.region,
            },
        )

    item, new = record_once(run.incident, _identity(seen), record)
    if not new:
        # Another action run collected it while this one copied: the extra copy stays,
        # locked, and is named here so that it can be disposed of after its retention.
        logger.warning(
            "evidence.duplicate_copy incident=%s source=%s key=%s",
            run.incident.reference,
            seen["source"],
            stored.key,
        )
    return item, new
