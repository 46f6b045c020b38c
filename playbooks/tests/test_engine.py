"""The run engine end to end on the simulated account, with the tagging action."""

from __future__ import annotations

import pytest

from cases.choices import EntryKind
from cases.models import AffectedResource, TimelineEntry
from playbooks import services
from playbooks.aws import client
from playbooks.choices import ActionState, RunStatus, StepState
from playbooks.models import ActionRun, Playbook
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db


def tag_playbook(approval: bool = False) -> Playbook:
    return Playbook.objects.create(
        slug="tag-it",
        name="Tag it",
        definition={
            "steps": [
                {
                    "id": "tag-instance",
                    "action": "tag_resource",
                    "parameters": {"resource": "${instance.id}"},
                },
                {
                    "id": "tag-again",
                    "action": "tag_resource",
                    "parameters": {"resource": "${instance.id}", "tags": {"stage": "two"}},
                    "approval": approval,
                },
            ]
        },
    )


@pytest.fixture
def instance_id(account) -> str:
    ec2 = client("ec2", REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


@pytest.fixture
def on_instance(incident, instance_id, lead_actor):
    AffectedResource.objects.create(
        incident=incident,
        account_id=ACCOUNT_ID,
        region=REGION,
        identifier=instance_id,
        resource_type="AWS::EC2::Instance",
    )
    return incident


def tags_of(instance_id: str) -> dict[str, str]:
    found = client("ec2", REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def test_a_run_tags_the_instance_and_records_each_step(
    on_instance, instance_id, lead_actor, engine
):
    with engine():
        run = services.start_run(lead_actor, on_instance, tag_playbook())
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert [s.state for s in run.steps.all()] == [StepState.SUCCEEDED, StepState.SUCCEEDED]
    assert tags_of(instance_id) == {"ir-portal:incident": on_instance.reference, "stage": "two"}
    kinds = list(TimelineEntry.objects.filter(incident=on_instance).values_list("kind", flat=True))
    assert kinds.count(EntryKind.ACTION_SUCCEEDED) == 2
    assert kinds[-1] == EntryKind.PLAYBOOK_FINISHED
    first = ActionRun.objects.order_by("id").first()
    assert first.request_ids and first.changed is True


def test_a_gate_waits_for_a_lead(on_instance, instance_id, lead_actor, engine):
    with engine():
        run = services.start_run(lead_actor, on_instance, tag_playbook(approval=True))
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    gated = run.steps.get(key="tag-again")
    assert gated.state == StepState.AWAITING_APPROVAL
    with engine():
        services.approve(lead_actor, gated)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert tags_of(instance_id)["stage"] == "two"


def test_asking_twice_returns_the_first_run(on_instance, instance_id, lead_actor, engine):
    inputs = {"resource": instance_id, "account_id": ACCOUNT_ID, "region": REGION}
    with engine():
        first, created = services.request_action(lead_actor, on_instance, "tag_resource", inputs)
        again, created_again = services.request_action(
            lead_actor, on_instance, "tag_resource", inputs
        )
    assert created and not created_again and first.pk == again.pk
    first.refresh_from_db()
    assert first.state == ActionState.SUCCEEDED
