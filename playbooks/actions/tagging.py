"""Tag any resource with the incident it is part of."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from playbooks.actions.base import Action, ActionInputs, Outcome, register
from playbooks.aws import AwsContext

INCIDENT_TAG = "ir-portal:incident"

# EC2 ids that `create_tags` takes as they are: a prefix and 8 or 17 hex digits, so that a
# bucket called `snap-backups` is not taken for a snapshot.
_EC2_ID = re.compile(
    r"^(?:i|vol|snap|sg|eni|ami|vpc|subnet|igw|rtb|nat|acl|eipalloc|lt)-[0-9a-f]{8}(?:[0-9a-f]{9})?$"
)


class TagInputs(ActionInputs):
    resource = serializers.CharField(
        max_length=2048, help_text="An EC2 id (i-…, vol-…, snap-…, sg-…) or an ARN."
    )
    tags = serializers.DictField(
        child=serializers.CharField(max_length=256, allow_blank=True),
        required=False,
        default=dict,
        help_text="Extra tags; the incident tag is always added.",
    )


@register
class TagResource(Action):
    name = "tag_resource"
    title = "Tag a resource with the incident reference"
    target_kind = "resource"
    target_input = "resource"
    inputs = TagInputs

    def wanted(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, str]:
        return {**inputs["tags"], INCIDENT_TAG: ctx.incident_reference}

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"tags": self._read(ctx, inputs["resource"])}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        wanted = self.wanted(ctx, inputs)
        missing = {k: v for k, v in wanted.items() if state["tags"].get(k) != v}
        first = ctx.first_seen or state
        added_earlier = {k: v for k, v in wanted.items() if first["tags"].get(k) != v}
        if not missing and added_earlier:  # an earlier attempt tagged it, then its worker died
            return Outcome(
                True,
                f"Tagged {inputs['resource']} with {', '.join(sorted(added_earlier))}",
                before=first,
                outputs={"added": added_earlier},
            )
        if not missing:
            return Outcome(False, f"{inputs['resource']} already carries the tags", before=state)
        self._write(ctx, inputs["resource"], missing)
        return Outcome(
            True,
            f"Tagged {inputs['resource']} with {', '.join(sorted(missing))}",
            before=state,
            outputs={"added": missing},
        )

    # Reading and writing tags differs by service; ARNs of other services go through the
    # Resource Groups Tagging API.
    def _read(self, ctx: AwsContext, resource: str) -> dict[str, str]:
        kind, name = _kind_of(resource)
        if kind == "ec2":
            found = ctx("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [name]}])
            return {t["Key"]: t["Value"] for t in found["Tags"]}
        if kind == "iam-user":
            return _pairs(ctx("iam").list_user_tags(UserName=name)["Tags"])
        if kind == "iam-role":
            return _pairs(ctx("iam").list_role_tags(RoleName=name)["Tags"])
        if kind == "s3":
            s3 = ctx("s3")
            try:
                return _pairs(s3.get_bucket_tagging(Bucket=name)["TagSet"])
            except s3.exceptions.ClientError as error:
                if error.response["Error"]["Code"] == "NoSuchTagSet":
                    return {}
                raise
        found = ctx("resourcegroupstaggingapi").get_resources(ResourceARNList=[resource])
        mappings = found.get("ResourceTagMappingList") or [{}]
        return _pairs(mappings[0].get("Tags") or [])

    def _write(self, ctx: AwsContext, resource: str, tags: dict[str, str]) -> None:
        kind, name = _kind_of(resource)
        listed = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        if kind == "ec2":
            ctx("ec2").create_tags(Resources=[name], Tags=listed)
        elif kind == "iam-user":
            ctx("iam").tag_user(UserName=name, Tags=listed)
        elif kind == "iam-role":
            ctx("iam").tag_role(RoleName=name, Tags=listed)
        elif kind == "s3":
            # S3 replaces the whole tag set: write what is there plus what is new.
            merged = {**self._read(ctx, resource), **tags}
            ctx("s3").put_bucket_tagging(
                Bucket=name,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(merged.items())]},
            )
        else:
            ctx("resourcegroupstaggingapi").tag_resources(ResourceARNList=[resource], Tags=tags)


def _pairs(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def _kind_of(resource: str) -> tuple[str, str]:
    """('ec2', id), ('iam-user', name), ('iam-role', name), ('s3', bucket) or ('arn', arn)."""
    if _EC2_ID.match(resource):
        return "ec2", resource
    if resource.startswith("arn:"):
        parts = resource.split(":", 5)
        service, path = parts[2], parts[5] if len(parts) > 5 else ""
        if service == "ec2" and "/" in path:
            return "ec2", path.rsplit("/", 1)[1]
        if service == "iam" and path.startswith("user/"):
            return "iam-user", path.rsplit("/", 1)[1]
        if service == "iam" and path.startswith("role/"):
            return "iam-role", path.rsplit("/", 1)[1]
        if service == "s3" and "/" not in path:
            return "s3", path
        return "arn", resource
    # A bare name: taken as a bucket, the only common resource named without an id prefix.
    return "s3", resource
