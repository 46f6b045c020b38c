"""Response actions on EC2 instances: isolate, take out of service, snapshot the volumes,
quarantine the instance profile.

Before changing an instance, an action notes on it (and on its network interfaces) in
`ir-portal:` tags what was there before and which action run is changing it. The engine
records the outcome only once `apply` returns: if the worker dies in between, the next
attempt finds the instance already changed, and these marks are how it still knows the
original state (for undo) and that the change was its own rather than done before. Undo
removes them. They also tell whoever looks at the instance in the console why it is so.

Every call used here is simulated by moto 5.2.5; where moto implements only one of AWS's
request forms, the one it implements is used (see `_set_shutdown_behavior`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError
from rest_framework import serializers

from playbooks.actions.base import Action, ActionInputs, Outcome, register
from playbooks.actions.tagging import INCIDENT_TAG
from playbooks.aws import AwsContext

ACTION_RUN_TAG = "ir-portal:action-run"
PURPOSE_TAG = "ir-portal:purpose"


class InstanceInputs(ActionInputs):
    instance_id = serializers.RegexField(
        r"^i-[0-9a-f]{8,17}$",
        help_text="The instance (i-…).",
        error_messages={"invalid": "An instance id: i- and 8 or 17 hex digits."},
    )


class InstanceAction(Action):
    target_kind = "instance"
    target_input = "instance_id"
    inputs = InstanceInputs


def _instance(ctx: AwsContext, instance_id: str) -> dict[str, Any]:
    """The instance as EC2 describes it (AWS says InvalidInstanceID.NotFound if unknown)."""
    reservations = ctx("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance: dict[str, Any] = reservations[0]["Instances"][0]
    state = instance["State"]["Name"]
    if state in ("shutting-down", "terminated"):
        raise ValueError(f"{instance_id} is {state}")
    return instance


def _tag_dict(tags: Iterable[dict[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags}


def _marks(tags: Iterable[dict[str, str]]) -> dict[str, str]:
    return {key: value for key, value in _tag_dict(tags).items() if key.startswith("ir-portal:")}


def _run_mark(ctx: AwsContext) -> str:
    if ctx.action_run_id is None:
        raise ValueError("this action needs its action run's id to recognise a retry")
    return str(ctx.action_run_id)


def _mark(ctx: AwsContext, resource_id: str, marks: dict[str, str]) -> None:
    if marks:
        listed = [{"Key": key, "Value": value} for key, value in sorted(marks.items())]
        ctx("ec2").create_tags(Resources=[resource_id], Tags=listed)


def _unmark(ctx: AwsContext, resource_id: str, keys: Iterable[str]) -> None:
    # EC2 deletes a tag named by key alone whatever its value, and ignores absent ones.
    listed = [{"Key": key} for key in sorted(set(keys))]
    if listed:
        ctx("ec2").delete_tags(Resources=[resource_id], Tags=listed)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# ---------------------------------------------------------------------------------------
# Isolation

ISOLATION_GROUP = "ir-portal-isolation"
ALLOW_ALL_GROUP = "ir-portal-isolation-allow-all"
ISOLATED_BY = "ir-portal:isolated-by"
PRIOR_TERMINATION = "ir-portal:prior-disable-api-termination"
PRIOR_SHUTDOWN = "ir-portal:prior-shutdown-behavior"
# One tag per original group (…:1, …:2): an interface may have up to 16 groups, more ids
# than one tag value holds.
PRIOR_GROUP = "ir-portal:prior-group:"
MAX_GROUPS_PER_INTERFACE = 16

_ALL_IPV4 = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
_ALL_IPV6 = {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}


@register
class IsolateInstance(InstanceAction):
    """Cut an instance off the network and keep it for forensics.

    Every network interface moves to a security group with no rules, one per VPC, made on
    first use. Moving an interface does not end connections the old groups let in: AWS
    keeps allowing tracked flows until they time out. Flows that an all-traffic rule allows
    both ways are untracked (EC2 User Guide, "Security group connection tracking"), and an
    untracked flow is judged packet by packet; so each interface passes through an
    allow-all group first, and the no-rules group then drops the connections already open.
    Termination protection goes on and shutdown from inside the instance stops it rather
    than terminating it, so the evidence stays.
    """

    name = "ec2_isolate_instance"
    title = "Isolate an EC2 instance"
    requires_approval = False
    undoable = True

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        instance_id = inputs["instance_id"]
        instance = _instance(ctx, instance_id)
        if not instance.get("VpcId"):
            raise ValueError(f"{instance_id} is not in a VPC")
        interfaces = _interfaces(ctx, instance)
        # An interface may come from another VPC than the instance's (multi-VPC
        # attachments), and a security group serves only its own VPC.
        vpcs = sorted({instance["VpcId"], *(seen["vpc_id"] for seen in interfaces.values())})
        found = {vpc_id: _find_group(ctx, vpc_id, ISOLATION_GROUP) for vpc_id in vpcs}
        return {
            "vpc_id": instance["VpcId"],
            "interfaces": interfaces,
            "termination_protection": _attribute(ctx, instance_id, "disableApiTermination"),
            "shutdown_behavior": _attribute(ctx, instance_id, "instanceInitiatedShutdownBehavior"),
            "marks": _marks(instance.get("Tags", [])),
            "isolation_groups": {vpc: group and group["GroupId"] for vpc, group in found.items()},
        }

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        instance_id = inputs["instance_id"]
        mine = state["marks"].get(ISOLATED_BY) == _run_mark(ctx)
        prior = _prior(state)
        if _isolated(state) and not mine:
            return Outcome(
                False,
                f"{instance_id} was already isolated: every interface in "
                f"{_listed(state['isolation_groups'])}, termination protection on, "
                "shutdown stops it",
                before=prior,
                outputs=_isolation_outputs(state, state["isolation_groups"], []),
            )

        isolation = {vpc: _isolation_group(ctx, vpc) for vpc in state["isolation_groups"]}
        allow_all = {vpc: _allow_all_group(ctx, vpc) for vpc in state["isolation_groups"]}
        _note_prior(ctx, instance_id, state, prior)
        for interface_id, seen in state["interfaces"].items():
            vpc_id = seen["vpc_id"]
            if seen["groups"] != [isolation[vpc_id]]:
                _cut_off(ctx, interface_id, seen["groups"], allow_all[vpc_id], isolation[vpc_id])
        protected = _protect(ctx, instance_id, state)

        # Counted from what was there before this run, so that a retry after a crash
        # reports what the run did, not only what was left to do.
        moved = [
            interface_id
            for interface_id, groups in prior["interfaces"].items()
            if groups != [isolation[state["interfaces"][interface_id]["vpc_id"]]]
        ]
        return Outcome(
            mine or bool(moved) or protected,
            f"Isolated {instance_id}: {len(moved)} interface(s) moved to {_listed(isolation)} "
            f"by way of {_listed(allow_all)}; termination protection on, shutdown stops it",
            before=prior,
            outputs=_isolation_outputs(state, isolation, moved),
        )

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        instance_id = inputs["instance_id"]
        before = done.before
        ec2 = ctx("ec2")
        for interface_id, groups in before["interfaces"].items():
            ec2.modify_network_interface_attribute(NetworkInterfaceId=interface_id, Groups=groups)
            _unmark(ctx, interface_id, _group_mark_keys())
        ec2.modify_instance_attribute(
            InstanceId=instance_id,
            DisableApiTermination={"Value": before["termination_protection"]},
        )
        _set_shutdown_behavior(ctx, instance_id, before["shutdown_behavior"])
        _unmark(ctx, instance_id, [ISOLATED_BY, PRIOR_TERMINATION, PRIOR_SHUTDOWN])
        return Outcome(
            True,
            f"Released {instance_id} from isolation: {len(before['interfaces'])} interface(s) "
            "back in their groups, termination protection and shutdown behaviour as they were",
            outputs={"interfaces_restored": list(before["interfaces"])},
        )


def _interfaces(ctx: AwsContext, instance: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each interface's groups now, and the groups a mark says it had before isolation."""
    ids = [interface["NetworkInterfaceId"] for interface in instance.get("NetworkInterfaces", [])]
    if not ids:
        return {}
    described = ctx("ec2").describe_network_interfaces(NetworkInterfaceIds=ids)
    return {
        interface["NetworkInterfaceId"]: {
            "vpc_id": interface["VpcId"],
            "groups": [group["GroupId"] for group in interface["Groups"]],
            "prior_groups": _groups_from_marks(_tag_dict(interface.get("TagSet", []))),
        }
        for interface in described["NetworkInterfaces"]
    }


def _group_mark_keys() -> list[str]:
    return [f"{PRIOR_GROUP}{n}" for n in range(1, MAX_GROUPS_PER_INTERFACE + 1)]


def _groups_from_marks(tags: dict[str, str]) -> list[str] | None:
    numbered = {
        int(k.removeprefix(PRIOR_GROUP)): v for k, v in tags.items() if k in _group_mark_keys()
    }
    return [numbered[n] for n in sorted(numbered)] or None


def _attribute(ctx: AwsContext, instance_id: str, attribute: str) -> Any:
    described = ctx("ec2").describe_instance_attribute(InstanceId=instance_id, Attribute=attribute)
    return described[attribute[0].upper() + attribute[1:]]["Value"]


def _prior(state: dict[str, Any]) -> dict[str, Any]:
    """What the instance was like before IR Portal isolated it: the marks where an earlier
    attempt left them, what is there now otherwise."""
    marks = state["marks"]
    termination = state["termination_protection"]
    if PRIOR_TERMINATION in marks:
        termination = marks[PRIOR_TERMINATION] == "true"
    return {
        "vpc_id": state["vpc_id"],
        "interfaces": {
            interface_id: seen["prior_groups"] or seen["groups"]
            for interface_id, seen in state["interfaces"].items()
        },
        "termination_protection": bool(termination),
        "shutdown_behavior": marks.get(PRIOR_SHUTDOWN, state["shutdown_behavior"]),
    }


def _isolated(state: dict[str, Any]) -> bool:
    groups = state["isolation_groups"]
    return (
        all(seen["groups"] == [groups[seen["vpc_id"]]] for seen in state["interfaces"].values())
        and bool(state["termination_protection"])
        and state["shutdown_behavior"] == "stop"
    )


def _isolation_outputs(
    state: dict[str, Any], groups: Mapping[str, str | None], moved: list[str]
) -> dict[str, Any]:
    return {
        "isolation_group_id": groups[state["vpc_id"]],
        "isolation_groups": groups,
        "interfaces_moved": moved,
    }


def _listed(groups: Mapping[str, Any]) -> str:
    return ", ".join(str(group) for group in groups.values())


def _note_prior(
    ctx: AwsContext, instance_id: str, state: dict[str, Any], prior: dict[str, Any]
) -> None:
    wanted = {
        ISOLATED_BY: _run_mark(ctx),
        PRIOR_TERMINATION: str(prior["termination_protection"]).lower(),
        PRIOR_SHUTDOWN: prior["shutdown_behavior"],
    }
    _mark(ctx, instance_id, {k: v for k, v in wanted.items() if state["marks"].get(k) != v})
    for interface_id, seen in state["interfaces"].items():
        if seen["prior_groups"] is None:
            groups = seen["groups"]
            _mark(ctx, interface_id, {f"{PRIOR_GROUP}{n}": g for n, g in enumerate(groups, 1)})


def _cut_off(
    ctx: AwsContext, interface_id: str, groups: list[str], allow_all: str, isolation: str
) -> None:
    ec2 = ctx("ec2")
    # Already there when an earlier attempt died between the two moves.
    if groups != [allow_all]:
        ec2.modify_network_interface_attribute(NetworkInterfaceId=interface_id, Groups=[allow_all])
    ec2.modify_network_interface_attribute(NetworkInterfaceId=interface_id, Groups=[isolation])


def _protect(ctx: AwsContext, instance_id: str, state: dict[str, Any]) -> bool:
    """Termination protection on, shutdown behaviour stop; True if either changed."""
    changed = False
    if not state["termination_protection"]:
        ctx("ec2").modify_instance_attribute(
            InstanceId=instance_id, DisableApiTermination={"Value": True}
        )
        changed = True
    if state["shutdown_behavior"] != "stop":
        _set_shutdown_behavior(ctx, instance_id, "stop")
        changed = True
    return changed


def _set_shutdown_behavior(ctx: AwsContext, instance_id: str, behavior: str) -> None:
    # The Attribute/Value form: AWS takes it as well as InstanceInitiatedShutdownBehavior=
    # {"Value": …}, and moto simulates only this one for this attribute.
    ctx("ec2").modify_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior", Value=behavior
    )


def _find_group(ctx: AwsContext, vpc_id: str, name: str) -> dict[str, Any] | None:
    found = ctx("ec2").describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [name]},
        ]
    )["SecurityGroups"]
    return found[0] if found else None


def _ensure_group(ctx: AwsContext, vpc_id: str, name: str, description: str) -> dict[str, Any]:
    """The group called `name` in the VPC, made if there is none."""
    found = _find_group(ctx, vpc_id, name)
    if found is not None:
        return found
    ec2 = ctx("ec2")
    try:
        created = ec2.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": [{"Key": PURPOSE_TAG, "Value": name}]}
            ],
        )
    except ClientError as error:
        if _error_code(error) != "InvalidGroup.Duplicate":
            raise
        # Another worker made it between our look and our create: use theirs.
        found = _find_group(ctx, vpc_id, name)
        if found is None:
            raise
        return found
    group: dict[str, Any] = ec2.describe_security_groups(GroupIds=[created["GroupId"]])[
        "SecurityGroups"
    ][0]
    return group


def _isolation_group(ctx: AwsContext, vpc_id: str) -> str:
    group = _ensure_group(
        ctx, vpc_id, ISOLATION_GROUP, "IR Portal: no traffic in or out of isolated instances"
    )
    # A new group comes with an allow-all egress rule, and a crashed worker may have left
    # it there; a rule added by hand would defeat isolation too. This group has none.
    ec2 = ctx("ec2")
    if group["IpPermissions"]:
        ec2.revoke_security_group_ingress(
            GroupId=group["GroupId"], IpPermissions=group["IpPermissions"]
        )
    if group["IpPermissionsEgress"]:
        ec2.revoke_security_group_egress(
            GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"]
        )
    return str(group["GroupId"])


def _allow_all_group(ctx: AwsContext, vpc_id: str) -> str:
    group = _ensure_group(
        ctx,
        vpc_id,
        ALLOW_ALL_GROUP,
        "IR Portal: all traffic, for a moment, so that isolation ends open connections",
    )
    ec2 = ctx("ec2")
    missing_in = _missing_all_traffic(group["IpPermissions"])
    if missing_in:
        ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=missing_in)
    missing_out = _missing_all_traffic(group["IpPermissionsEgress"])
    if missing_out:
        ec2.authorize_security_group_egress(GroupId=group["GroupId"], IpPermissions=missing_out)
    return str(group["GroupId"])


def _missing_all_traffic(permissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The all-traffic rules (IPv4 and IPv6) that `permissions` lack."""
    everything = [p for p in permissions if p.get("IpProtocol") == "-1"]
    has_ipv4 = any(
        r.get("CidrIp") == "0.0.0.0/0" for p in everything for r in p.get("IpRanges", [])
    )
    has_ipv6 = any(r.get("CidrIpv6") == "::/0" for p in everything for r in p.get("Ipv6Ranges", []))
    return [rule for rule, present in ((_ALL_IPV4, has_ipv4), (_ALL_IPV6, has_ipv6)) if not present]


# ---------------------------------------------------------------------------------------
# Out of service

OUT_OF_SERVICE_BY = "ir-portal:out-of-service-by"
STANDBY_IN = "ir-portal:standby-in"
# `…:<target group name>:<port>`, its value the target group's ARN.
DEREGISTERED_FROM = "ir-portal:deregistered-from:"


class OutOfServiceInputs(InstanceInputs):
    decrement_desired_capacity = serializers.BooleanField(
        default=False,
        help_text="Shrink the Auto Scaling group instead of letting it launch a replacement.",
    )


@register
class TakeOutOfService(InstanceAction):
    """Stop an instance serving: Standby in its Auto Scaling group (no longer health
    checked, so not terminated as unhealthy; by default the group launches a replacement),
    and deregistered from every ELBv2 target group that routes to it. Finding those takes
    a DescribeTargetHealth per instance target group in the instance's VPC."""

    name = "ec2_take_out_of_service"
    title = "Take an EC2 instance out of service"
    inputs = OutOfServiceInputs
    undoable = True

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        instance_id = inputs["instance_id"]
        instance = _instance(ctx, instance_id)
        found = ctx("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
        membership = (found["AutoScalingInstances"] or [{}])[0]
        return {
            "auto_scaling_group": membership.get("AutoScalingGroupName"),
            "lifecycle_state": membership.get("LifecycleState"),
            "registrations": _registrations(ctx, instance_id, instance.get("VpcId")),
            "marks": _marks(instance.get("Tags", [])),
        }

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        instance_id = inputs["instance_id"]
        run = _run_mark(ctx)
        mine = state["marks"].get(OUT_OF_SERVICE_BY) == run
        to_standby = state["lifecycle_state"] == "InService"
        registrations = state["registrations"]
        if not (to_standby or registrations or mine):
            return Outcome(False, _already_out(instance_id, state), before=_recorded({}))

        marks = {OUT_OF_SERVICE_BY: run, **{_registration_key(r): r["arn"] for r in registrations}}
        if to_standby:
            marks[STANDBY_IN] = state["auto_scaling_group"]
        _mark(ctx, instance_id, marks)
        if to_standby:
            ctx("autoscaling").enter_standby(
                InstanceIds=[instance_id],
                AutoScalingGroupName=state["auto_scaling_group"],
                ShouldDecrementDesiredCapacity=inputs["decrement_desired_capacity"],
            )
        for arn, ports in _by_target_group(registrations).items():
            ctx("elbv2").deregister_targets(
                TargetGroupArn=arn, Targets=[{"Id": instance_id, "Port": p} for p in ports]
            )

        before = _recorded({**state["marks"], **marks})
        return Outcome(True, _took_out(instance_id, before), before=before)

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        instance_id = inputs["instance_id"]
        group = done.before["auto_scaling_group"]
        if group and _lifecycle_state(ctx, instance_id) == "Standby":
            ctx("autoscaling").exit_standby(InstanceIds=[instance_id], AutoScalingGroupName=group)
        registrations = done.before["target_groups"]
        # Registering a target already registered changes nothing, so no look first.
        for arn, ports in _by_target_group(registrations).items():
            ctx("elbv2").register_targets(
                TargetGroupArn=arn, Targets=[{"Id": instance_id, "Port": p} for p in ports]
            )
        keys = [OUT_OF_SERVICE_BY, STANDBY_IN, *map(_registration_key, registrations)]
        _unmark(ctx, instance_id, keys)
        return Outcome(
            True,
            f"Put {instance_id} back in service: "
            + (f"out of standby in {group}, " if group else "")
            + f"registered again with {len(_by_target_group(registrations))} target group(s)",
        )


def _registrations(ctx: AwsContext, instance_id: str, vpc_id: str | None) -> list[dict[str, Any]]:
    """Where the instance is registered as a target: target group ARN, name and port."""
    elbv2 = ctx("elbv2")
    found = []
    for page in elbv2.get_paginator("describe_target_groups").paginate():
        for group in page["TargetGroups"]:
            # Only an instance target group in the instance's own VPC can hold it by id.
            if group.get("TargetType") != "instance" or group.get("VpcId") != vpc_id:
                continue
            health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
            for described in health["TargetHealthDescriptions"]:
                target = described["Target"]
                # A draining target is already on its way out.
                if target["Id"] == instance_id and described["TargetHealth"]["State"] != "draining":
                    found.append(
                        {
                            "arn": group["TargetGroupArn"],
                            "name": group["TargetGroupName"],
                            "port": target["Port"],
                        }
                    )
    return found


def _registration_key(registration: dict[str, Any]) -> str:
    return f"{DEREGISTERED_FROM}{registration['name']}:{registration['port']}"


def _recorded(marks: dict[str, str]) -> dict[str, Any]:
    """What the marks say IR Portal took the instance out of."""
    target_groups = []
    for key, arn in sorted(marks.items()):
        if key.startswith(DEREGISTERED_FROM):
            name, port = key.removeprefix(DEREGISTERED_FROM).rsplit(":", 1)
            target_groups.append({"arn": arn, "name": name, "port": int(port)})
    return {"auto_scaling_group": marks.get(STANDBY_IN), "target_groups": target_groups}


def _by_target_group(registrations: list[dict[str, Any]]) -> dict[str, list[int]]:
    ports: dict[str, list[int]] = {}
    for registration in registrations:
        ports.setdefault(registration["arn"], []).append(registration["port"])
    return ports


def _lifecycle_state(ctx: AwsContext, instance_id: str) -> str | None:
    found = ctx("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    return (found["AutoScalingInstances"] or [{}])[0].get("LifecycleState")


def _already_out(instance_id: str, state: dict[str, Any]) -> str:
    group = state["auto_scaling_group"]
    if group is None:
        return f"{instance_id} is in no Auto Scaling group and no target group"
    return f"{instance_id} is {state['lifecycle_state']} in {group} and in no target group"


def _took_out(instance_id: str, before: dict[str, Any]) -> str:
    done = []
    if before["auto_scaling_group"]:
        done.append(f"standby in {before['auto_scaling_group']}")
    groups = _by_target_group(before["target_groups"])
    if groups:
        done.append(f"deregistered from {len(groups)} target group(s)")
    return f"Took {instance_id} out of service: {', '.join(done)}"


# ---------------------------------------------------------------------------------------
# Snapshots


@register
class SnapshotVolumes(InstanceAction):
    """A snapshot of every EBS volume attached to the instance, tagged with the incident
    and the action run. Tags are given in the create call itself, so a snapshot whose
    answer a dying worker never saw is still found, and not taken twice, on the retry.
    Snapshots complete in the background: the outputs name them while still pending."""

    name = "ec2_snapshot_volumes"
    title = "Snapshot the EBS volumes of an EC2 instance"

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        instance = _instance(ctx, inputs["instance_id"])
        volumes = {
            mapping["Ebs"]["VolumeId"]: mapping["DeviceName"]
            for mapping in instance.get("BlockDeviceMappings", [])
            if "Ebs" in mapping
        }
        return {"volumes": volumes, "snapshots": _snapshots_of_run(ctx)}

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        instance_id = inputs["instance_id"]
        volumes = state["volumes"]
        if not volumes:
            return Outcome(False, f"{instance_id} has no EBS volume", before={"volumes": {}})
        snapshots = dict(state["snapshots"])
        for volume_id, device in volumes.items():
            if volume_id not in snapshots:
                snapshots[volume_id] = _snapshot(ctx, instance_id, volume_id, device)
        listed = ", ".join(f"{v} ({volumes[v]}): {s}" for v, s in sorted(snapshots.items()))
        return Outcome(
            True,
            f"Snapshotted {len(snapshots)} volume(s) of {instance_id}: {listed}",
            before={"volumes": volumes},
            outputs={"snapshots": snapshots},
        )


def _snapshots_of_run(ctx: AwsContext) -> dict[str, str]:
    """Snapshots this action run started already (in an attempt that died), by volume."""
    found = ctx("ec2").describe_snapshots(
        OwnerIds=["self"],
        Filters=[{"Name": f"tag:{ACTION_RUN_TAG}", "Values": [_run_mark(ctx)]}],
    )
    return {snapshot["VolumeId"]: snapshot["SnapshotId"] for snapshot in found["Snapshots"]}


def _snapshot(ctx: AwsContext, instance_id: str, volume_id: str, device: str) -> str:
    tags = {
        INCIDENT_TAG: ctx.incident_reference,
        ACTION_RUN_TAG: _run_mark(ctx),
        "ir-portal:instance": instance_id,
        "ir-portal:volume": volume_id,
        "ir-portal:device": device,
    }
    created = ctx("ec2").create_snapshot(
        VolumeId=volume_id,
        Description=f"IR Portal {ctx.incident_reference}: {instance_id} {device}",
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
            }
        ],
    )
    return str(created["SnapshotId"])


# ---------------------------------------------------------------------------------------
# Quarantine instance profile

QUARANTINED_BY = "ir-portal:quarantined-by"
PRIOR_PROFILE = "ir-portal:prior-instance-profile"  # its ARN, empty when there was none
DENY_ALL_POLICY = "ir-portal-deny-all"
_DENY_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
)
_EC2_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
# IAM is eventually consistent: for a few seconds after an instance profile is made, EC2
# may not know it yet and answers InvalidParameterValue.
FRESH_PROFILE_WAITS = (1.0, 2.0, 4.0, 8.0)


class QuarantineInputs(InstanceInputs):
    profile_name = serializers.RegexField(
        r"^[\w+=,.@-]{1,128}$",
        default="ir-portal-quarantine",
        help_text="The quarantine instance profile; made (with a deny-all role) if missing.",
    )


@register
class QuarantineInstanceProfile(InstanceAction):
    """Swap the instance's IAM instance profile for one whose role denies everything.

    New credentials from the instance metadata service carry no permissions; credentials
    the instance already fetched stay valid until they expire, which revoking the old
    role's sessions addresses. The association is read from EC2's association API, not
    from DescribeInstances (moto does not update the latter on a replace).
    """

    name = "ec2_quarantine_instance_profile"
    title = "Quarantine the instance profile of an EC2 instance"
    inputs = QuarantineInputs
    requires_approval = True
    undoable = True

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        instance = _instance(ctx, inputs["instance_id"])
        return {
            "association": _association(ctx, inputs["instance_id"]),
            "quarantine_profile_arn": _profile_arn(ctx, inputs["profile_name"]),
            "marks": _marks(instance.get("Tags", [])),
        }

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        instance_id, name = inputs["instance_id"], inputs["profile_name"]
        marks = state["marks"]
        mine = marks.get(QUARANTINED_BY) == _run_mark(ctx)
        current = state["association"]
        quarantine = state["quarantine_profile_arn"]
        fresh = quarantine is None
        if quarantine is None:
            quarantine = _make_quarantine_profile(ctx, name)

        on_quarantine = current is not None and current["profile_arn"] == quarantine
        prior = marks[PRIOR_PROFILE] if PRIOR_PROFILE in marks else _arn_of(current)
        before = {"profile_arn": prior or None}
        if on_quarantine and not mine:
            summary = f"{instance_id} already uses the quarantine instance profile {name}"
            return Outcome(False, summary, before=before, outputs={"profile_arn": quarantine})

        wanted = {QUARANTINED_BY: _run_mark(ctx), PRIOR_PROFILE: prior}
        _mark(ctx, instance_id, {k: v for k, v in wanted.items() if marks.get(k) != v})
        if not on_quarantine:
            _attach_profile(ctx, instance_id, current, quarantine, fresh=fresh)
        return Outcome(
            True,
            f"Swapped the instance profile of {instance_id} ({prior or 'none'}) for {name}",
            before=before,
            outputs={"profile_arn": quarantine},
        )

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        instance_id = inputs["instance_id"]
        prior = done.before.get("profile_arn")
        current = _association(ctx, instance_id)
        if prior:
            if _arn_of(current) != prior:
                _attach_profile(ctx, instance_id, current, prior, fresh=False)
            summary = f"Gave {instance_id} back its instance profile {prior}"
        else:
            if current is not None:
                ctx("ec2").disassociate_iam_instance_profile(AssociationId=current["id"])
            summary = f"Took the quarantine instance profile off {instance_id}, which had none"
        _unmark(ctx, instance_id, [QUARANTINED_BY, PRIOR_PROFILE])
        return Outcome(True, summary)


def _association(ctx: AwsContext, instance_id: str) -> dict[str, str] | None:
    found = ctx("ec2").describe_iam_instance_profile_associations(
        Filters=[
            {"Name": "instance-id", "Values": [instance_id]},
            {"Name": "state", "Values": ["associating", "associated"]},
        ]
    )["IamInstanceProfileAssociations"]
    if not found:
        return None
    return {"id": found[0]["AssociationId"], "profile_arn": found[0]["IamInstanceProfile"]["Arn"]}


def _arn_of(association: dict[str, str] | None) -> str:
    return association["profile_arn"] if association else ""


def _profile_arn(ctx: AwsContext, name: str) -> str | None:
    """The profile's ARN, or None when it is missing or has no role yet (half made)."""
    iam = ctx("iam")
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as error:
        if _error_code(error) == "NoSuchEntity":
            return None
        raise
    return str(profile["Arn"]) if profile["Roles"] else None


def _make_quarantine_profile(ctx: AwsContext, name: str) -> str:
    """A role named `name` that may do nothing, in an instance profile of the same name.
    Each step is skipped where done already, by another worker or an earlier attempt."""
    iam = ctx("iam")
    _ensure_quarantine_role(ctx, name)
    try:
        iam.create_instance_profile(
            InstanceProfileName=name, Tags=[{"Key": PURPOSE_TAG, "Value": "quarantine"}]
        )
    except ClientError as error:
        if _error_code(error) != "EntityAlreadyExists":
            raise
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    if not profile["Roles"]:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return str(profile["Arn"])


def _ensure_quarantine_role(ctx: AwsContext, name: str) -> None:
    iam = ctx("iam")
    try:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=_EC2_TRUST,
            Description="IR Portal: the role of quarantined instances; it may do nothing",
            Tags=[{"Key": PURPOSE_TAG, "Value": "quarantine"}],
        )
    except ClientError as error:
        if _error_code(error) != "EntityAlreadyExists":
            raise
        # A role of that name that IR Portal did not make is someone's working role: a
        # deny-all policy on it would break whatever uses it.
        tags = _tag_dict(iam.list_role_tags(RoleName=name)["Tags"])
        if tags.get(PURPOSE_TAG) != "quarantine":
            raise ValueError(f"a role named {name} exists and is not IR Portal's") from None
    iam.put_role_policy(RoleName=name, PolicyName=DENY_ALL_POLICY, PolicyDocument=_DENY_ALL)


def _attach_profile(
    ctx: AwsContext,
    instance_id: str,
    current: dict[str, str] | None,
    profile_arn: str,
    *,
    fresh: bool,
) -> None:
    """Associate `profile_arn` with the instance, replacing `current`; a profile made just
    now is waited for while EC2 does not know it yet."""
    ec2 = ctx("ec2")
    waits = list(FRESH_PROFILE_WAITS) if fresh else []
    while True:
        try:
            if current is None:
                ec2.associate_iam_instance_profile(
                    InstanceId=instance_id, IamInstanceProfile={"Arn": profile_arn}
                )
            else:
                ec2.replace_iam_instance_profile_association(
                    AssociationId=current["id"], IamInstanceProfile={"Arn": profile_arn}
                )
            return
        except ClientError as error:
            if not waits or _error_code(error) != "InvalidParameterValue":
                raise
            time.sleep(waits.pop(0))
