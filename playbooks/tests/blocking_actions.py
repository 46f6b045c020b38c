"""Actions for tests only. Worker processes started by a test register them by loading
this module through the setting PLAYBOOK_ACTION_MODULES=playbooks.tests.blocking_actions;
a test process registers them for the length of a test, so that no other test sees them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from rest_framework import serializers

from playbooks.actions.base import Action, ActionInputs, Outcome, register
from playbooks.actions.ec2 import ACTION_RUN_TAG  # how a retry finds the first's snapshot
from playbooks.aws import AwsContext

# Files written in `marker_dir`, one line per event, so a test can count them.
APPLY_STARTED = "apply-started"
SNAPSHOT_TAKEN = "snapshot-taken"


class SnapshotThenHangInputs(ActionInputs):
    instance_id = serializers.RegexField(r"^i-[0-9a-f]+$")
    marker_dir = serializers.CharField(max_length=1024, help_text="Where markers are written.")
    hang_seconds = serializers.FloatField(min_value=0, default=120)


class SnapshotThenHang(Action):
    """Snapshot the instance's root volume, then hang: a worker that dies here has acted
    on AWS but not committed the outcome. It looks before it acts, as every action must,
    so a second attempt finds the snapshot and neither takes another nor hangs."""

    name = "test_snapshot_then_hang"
    title = "Snapshot the root volume, then hang (tests only)"
    target_kind = "instance"
    target_input = "instance_id"
    inputs = SnapshotThenHangInputs

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        ec2 = ctx("ec2")
        found = ec2.describe_instances(InstanceIds=[inputs["instance_id"]])
        instance = found["Reservations"][0]["Instances"][0]
        volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        snapshots = ec2.describe_snapshots(
            OwnerIds=["self"],
            Filters=[
                {"Name": "volume-id", "Values": [volume_id]},
                {"Name": f"tag:{ACTION_RUN_TAG}", "Values": [str(ctx.action_run_id)]},
            ],
        )["Snapshots"]
        return {"volume_id": volume_id, "snapshots": [s["SnapshotId"] for s in snapshots]}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        markers = Path(inputs["marker_dir"])
        mark(markers / APPLY_STARTED, str(ctx.action_run_id))
        if state["snapshots"]:
            return Outcome(
                False,
                f"{state['volume_id']} already has snapshot {state['snapshots'][0]}",
                before=state,
                outputs={"snapshot_id": state["snapshots"][0]},
            )

        snapshot_id = ctx("ec2").create_snapshot(
            VolumeId=state["volume_id"],
            Description=f"{ctx.incident_reference} (test)",
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [{"Key": ACTION_RUN_TAG, "Value": str(ctx.action_run_id)}],
                }
            ],
        )["SnapshotId"]
        mark(markers / SNAPSHOT_TAKEN, snapshot_id)

        # The test kills the worker while it sleeps here.
        time.sleep(inputs["hang_seconds"])
        return Outcome(
            True,
            f"Snapshot {snapshot_id} of {state['volume_id']}",
            before=state,
            outputs={"snapshot_id": snapshot_id},
        )


def mark(path: Path, note: str) -> None:
    """Append one line (the process id and a note) to `path`."""
    with path.open("a") as marker:
        marker.write(f"{os.getpid()} {note}\n")


def marks(path: Path) -> list[str]:
    """The lines `mark` wrote to `path` (none when it never did)."""
    return path.read_text().splitlines() if path.exists() else []


if __name__ in settings.PLAYBOOK_ACTION_MODULES:
    register(SnapshotThenHang)
