"""Playbook definitions: what they may say, and how their parameters are drawn from an
incident, its affected resources and its findings (public GuardDuty and Security Hub
samples, kept outside the repository: see findings/tests/test_parsing.py)."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rest_framework import serializers

from cases.models import AffectedResource
from findings.models import Finding
from findings.parsing import parse_event
from playbooks import definitions
from playbooks.definitions import Unresolvable, clean_definition, holds, resolve

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("IRPORTAL_SAMPLES") or REPO.parent / "shared" / "samples")


def sample(name: str) -> Any:
    path = SAMPLES / name
    assert path.is_file(), f"{path} is missing: set IRPORTAL_SAMPLES to the samples folder"
    return json.loads(path.read_text())


def found_in(incident, event: Any, **changes: Any) -> Finding:
    """The event's finding, stored as ingestion stores it, on `incident`."""
    [parsed] = parse_event(event)
    fields = {**asdict(parsed), **changes}
    return Finding.objects.create(**fields, incident=incident)


def tag_step(**fields: Any) -> dict[str, Any]:
    return {
        "id": "tag",
        "action": "tag_resource",
        "parameters": {"resource": "${instance.id}"},
        **fields,
    }


def problems(raw: Any) -> str:
    with pytest.raises(serializers.ValidationError) as refused:
        clean_definition(raw)
    return json.dumps(refused.value.detail)


# --- incident_context -------------------------------------------------------------------


def test_it_describes_the_incident_and_its_affected_resources(incident):
    AffectedResource.objects.create(
        incident=incident,
        account_id="111122223333",
        region="eu-west-1",
        identifier="arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc",
        resource_type="AWS::EC2::Instance",
        tags={"team": "payments"},
    )
    AffectedResource.objects.create(
        incident=incident,
        account_id="111122223333",
        identifier="arn:aws:iam::111122223333:user/ops/alice",
        resource_type="AWS::IAM::User",
    )

    context = definitions.incident_context(incident)

    assert context["incident"]["reference"] == incident.reference
    assert context["instance"] == {
        "id": "i-0abc",
        "name": "i-0abc",
        "arn": "arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc",
        "account_id": "111122223333",
        "region": "eu-west-1",
        "tags": {"team": "payments"},
    }
    assert context["user"]["name"] == "alice"
    assert (context["account_id"], context["region"]) == ("111122223333", "eu-west-1")


def test_inputs_given_at_start_win_over_the_incident(incident):
    AffectedResource.objects.create(
        incident=incident,
        account_id="111122223333",
        region="eu-west-1",
        identifier="i-0abc",
        resource_type="AWS::EC2::Instance",
    )

    context = definitions.incident_context(
        incident, {"instance.id": "i-0other", "region": "us-east-2", "bucket.id": "logs"}
    )

    assert context["instance"]["id"] == "i-0other"
    assert context["instance"]["account_id"] == "111122223333"
    assert context["region"] == "us-east-2"
    assert context["bucket"] == {"id": "logs"}


def test_an_input_below_a_plain_value_replaces_it(incident):
    context = definitions.incident_context(incident, {"region": "eu-west-1", "region.name": "x"})

    assert context["region"] == {"name": "x"}


def test_it_reads_the_instance_of_a_guardduty_finding(incident):
    found_in(incident, sample("guardduty/awssamples-autoresp-guardduty_ec2_event.json"))

    context = definitions.incident_context(incident)

    assert context["instance"] == {
        "id": "i-05746eb48123455e0",
        "name": "i-05746eb48123455e0",
        "arn": "",
        "account_id": "123456789012",
        "region": "us-east-1",
        "tags": {"Name": "ssh-22-open"},
    }
    assert (context["account_id"], context["region"]) == ("123456789012", "us-east-1")


def test_it_reads_the_user_and_key_of_a_guardduty_credentials_finding(incident):
    found_in(incident, sample("guardduty/awssamples-autoresp-guardduty_iam_event.json"))

    context = definitions.incident_context(incident)

    assert context["user"]["name"] == "GeneratedFindingUserName"
    assert context["access_key"]["id"] == "GeneratedFindingAccessKeyId"
    assert "role" not in context


def test_the_user_of_an_assumed_role_key_is_a_role(incident):
    event = copy.deepcopy(sample("guardduty/awssamples-autoresp-guardduty_iam_event.json"))
    detail = event.get("detail", event)
    detail["resource"]["accessKeyDetails"]["userType"] = "AssumedRole"
    found_in(incident, event)

    context = definitions.incident_context(incident)

    assert context["role"]["name"] == "GeneratedFindingUserName"
    assert "user" not in context


def test_it_reads_arns_of_security_hub_findings(incident):
    found_in(incident, sample("securityhub/asr-simdata-afsbp-iam.3.json"))
    found_in(incident, sample("securityhub/asr-simdata-afsbp-s3.2.json"))

    context = definitions.incident_context(incident)

    assert context["user"]["name"] == "test-admin2"
    assert context["user"]["arn"] == "arn:aws:iam::111111111111:user/test-admin2"
    assert context["user"]["account_id"] == "111111111111"
    assert context["bucket"]["id"] == "so0111-aws-cloudtrail-111111111111"
    assert context["bucket"]["region"] == "us-east-1"


def test_affected_resources_come_before_findings_and_newer_findings_first(incident):
    event = sample("guardduty/awssamples-autoresp-guardduty_s3_event.json")
    older = found_in(incident, event)
    newer_event = copy.deepcopy(event)
    newer_event.get("detail", newer_event)["id"] = "a-newer-finding"
    newer_event.get("detail", newer_event)["resource"]["s3BucketDetails"][0]["name"] = "newer"
    found_in(incident, newer_event, last_seen=older.last_seen + timedelta(hours=1))
    AffectedResource.objects.create(
        incident=incident,
        account_id="123456789012",
        identifier="i-0mine",
        resource_type="AWS::EC2::Instance",
    )

    context = definitions.incident_context(incident)

    assert context["instance"]["id"] == "i-0mine"  # the samples name i-99999999
    assert context["bucket"]["id"] == "newer"


# --- ${path} ----------------------------------------------------------------------------

CONTEXT = {
    "incident": {"reference": "IR-2026-0042", "severity": "sev2"},
    "instance": {"id": "i-0abc", "tags": {"team": "payments"}, "ports": [22, 3389]},
    "count": 3,
    "empty": "",
}


def test_a_whole_reference_keeps_the_type_of_its_value():
    assert resolve("${instance.tags}", CONTEXT) == {"team": "payments"}
    assert resolve("${instance.ports}", CONTEXT) == [22, 3389]
    assert resolve(" ${ count } ", CONTEXT) == 3


def test_references_inside_text_are_interpolated():
    text = "Contained for ${incident.reference} (${count} keys) on ${instance.id}"

    assert resolve(text, CONTEXT) == "Contained for IR-2026-0042 (3 keys) on i-0abc"


def test_references_are_resolved_through_mappings_and_lists():
    raw = {"resource": "${instance.id}", "tags": {"incident": "${incident.reference}"}, "n": 5}

    assert resolve(raw, CONTEXT) == {
        "resource": "i-0abc",
        "tags": {"incident": "IR-2026-0042"},
        "n": 5,
    }
    assert resolve(["${count}", "x"], CONTEXT) == [3, "x"]


@pytest.mark.parametrize(
    "value", ["${user.name}", "key of ${user.name}", "${empty}", "${instance.id.more}"]
)
def test_a_missing_value_is_unresolvable_and_named(value):
    with pytest.raises(Unresolvable) as missing:
        resolve(value, CONTEXT)

    assert str(missing.value) in value


def test_step_inputs_act_where_the_named_resource_is():
    context = {
        "instance": {"id": "i-0abc", "account_id": "111122223333", "region": "eu-west-1"},
        "bucket": {"id": "logs", "account_id": "444455556666", "region": "us-east-1"},
        "account_id": "111122223333",
        "region": "eu-west-1",
    }
    step = {"id": "tag", "action": "tag_resource", "parameters": {"resource": "${bucket.id}"}}

    raw = definitions.step_inputs(step, context)

    assert raw == {"resource": "logs", "account_id": "444455556666", "region": "us-east-1"}


def test_step_inputs_keep_the_account_and_region_a_step_gives():
    context = {"instance": {"id": "i-0abc", "account_id": "111122223333", "region": "eu-west-1"}}
    step = tag_step(parameters={"resource": "${instance.id}", "region": "us-west-2"})

    raw = definitions.step_inputs(step, context)

    assert raw["region"] == "us-west-2" and raw["account_id"] == "111122223333"


# --- Conditions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (None, True),
        ({"exists": "instance.id"}, True),
        ({"exists": "user.name"}, False),
        ({"exists": "empty"}, False),
        ({"equals": ["incident.severity", "sev2"]}, True),
        ({"equals": ["incident.severity", "sev1"]}, False),
        ({"in": ["incident.severity", ["sev1", "sev2"]]}, True),
        ({"in": ["user.name", ["alice"]]}, False),
        ({"not": {"exists": "user.name"}}, True),
        ({"all": [{"exists": "instance.id"}, {"equals": ["count", 3]}]}, True),
        ({"all": [{"exists": "instance.id"}, {"exists": "user.name"}]}, False),
        ({"any": [{"exists": "user.name"}, {"exists": "instance.tags.team"}]}, True),
        ({"any": [{"exists": "user.name"}, {"equals": ["count", 4]}]}, False),
    ],
)
def test_conditions(condition, expected):
    assert holds(condition, CONTEXT) is expected


# --- clean_definition -------------------------------------------------------------------


def test_a_valid_definition_is_kept_with_its_defaults():
    cleaned = clean_definition(
        {"steps": [tag_step(when={"exists": "instance.id"}, approval=True)], "name": "ignored"}
    )

    assert cleaned == {
        "steps": [
            {
                "id": "tag",
                "action": "tag_resource",
                "parameters": {"resource": "${instance.id}"},
                "when": {"exists": "instance.id"},
                "approval": True,
                "on_failure": "stop",
            }
        ]
    }


def test_it_refuses_an_unknown_action_and_names_the_known_ones():
    said = problems({"steps": [tag_step(action="nuke_account")]})

    assert "nuke_account" in said and "tag_resource" in said


def test_it_refuses_a_parameter_the_action_does_not_take():
    said = problems({"steps": [tag_step(parameters={"resource": "x", "colour": "red"})]})

    assert "tag_resource takes no colour" in said


def test_it_refuses_a_step_without_a_parameter_the_action_needs():
    said = problems({"steps": [tag_step(parameters={"tags": {"a": "b"}})]})

    assert "tag_resource needs resource" in said


def test_it_refuses_a_mistyped_reference():
    said = problems({"steps": [tag_step(parameters={"resource": "${instance-id}"})]})

    assert "instance-id" in said


def test_it_refuses_two_steps_with_one_id():
    said = problems({"steps": [tag_step(), tag_step()]})

    assert "two steps are called 'tag'" in said


@pytest.mark.parametrize(
    "condition",
    [
        {},
        "instance.id",
        {"exists": ["instance.id"]},
        {"exists": "instance.id", "not": {"exists": "user.name"}},
        {"equals": ["incident.severity"]},
        {"equals": [3, 3]},
        {"in": ["incident.severity", "sev1"]},
        {"not": {"whenever": "x"}},
        {"all": {"exists": "x"}},
        {"any": [{"exists": "x"}, {"maybe": "y"}]},
    ],
)
def test_it_refuses_a_bad_condition(condition):
    said = problems({"steps": [tag_step(when=condition)]})

    assert '"when"' in said


@pytest.mark.parametrize("raw", [[], "steps: []", {"steps": []}, {"name": "no steps"}])
def test_it_refuses_a_definition_without_steps(raw):
    problems(raw)
