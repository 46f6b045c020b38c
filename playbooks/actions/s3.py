"""Response actions on S3."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from rest_framework import serializers

from playbooks.actions.base import Action, ActionInputs, Outcome, register
from playbooks.aws import AwsContext

ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


class BucketInputs(ActionInputs):
    # Loose enough for the upper-case and underscored names of old us-east-1 buckets.
    bucket = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$", help_text="The bucket's name."
    )


@register
class BlockPublicAccess(Action):
    name = "s3_block_public_access"
    title = "Block all public access to an S3 bucket"
    target_kind = "bucket"
    target_input = "bucket"
    inputs = BucketInputs
    undoable = True

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        """The bucket's public access block; None when it has none (which is not the same
        as all four flags off: undo must delete the block rather than write one)."""
        s3 = ctx("s3")
        try:
            found = s3.get_public_access_block(Bucket=inputs["bucket"])
        except ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration":
                return {"configuration": None}
            raise
        return {"configuration": found["PublicAccessBlockConfiguration"]}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        bucket = inputs["bucket"]
        first = ctx.first_seen or state
        blocked = f"Blocked all public access to bucket {bucket}"
        outputs = {"configuration": ALL_BLOCKED}
        if _all_blocked(state["configuration"]):
            if not _all_blocked(first["configuration"]):  # an earlier attempt did it
                return Outcome(True, blocked, before=first, outputs=outputs)
            return Outcome(False, f"Bucket {bucket} already blocks all public access", before=state)
        ctx("s3").put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=ALL_BLOCKED)
        return Outcome(True, blocked, before=first, outputs=outputs)

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        bucket, previous = inputs["bucket"], done.before.get("configuration")
        s3 = ctx("s3")
        if previous is None:
            s3.delete_public_access_block(Bucket=bucket)
            return Outcome(True, f"Removed the public access block of bucket {bucket}")
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=previous)
        return Outcome(
            True,
            f"Restored the earlier public access block of bucket {bucket}",
            outputs={"configuration": previous},
        )


def _all_blocked(configuration: dict[str, bool] | None) -> bool:
    return configuration is not None and all(configuration.get(flag) for flag in ALL_BLOCKED)
