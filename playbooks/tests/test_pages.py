"""The response pages: an incident's playbook runs worked from the browser, and the
playbook library, with the same access rules and services as the API."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases.choices import EntryKind
from cases.models import AffectedResource, TimelineEntry
from playbooks import services
from playbooks.aws import client
from playbooks.choices import ActionState, RunStatus, StepState
from playbooks.models import ActionRun, Playbook, PlaybookRun, RunStep
from playbooks.tests.conftest import ACCOUNT_ID, IMAGE_ID, REGION
from playbooks.views import parse_assignments, problems_in

pytestmark = pytest.mark.django_db

WHERE = f"account_id={ACCOUNT_ID}\nregion={REGION}"


def gated_playbook(slug: str = "tag-it", **fields) -> Playbook:
    """Two tagging steps; a lead approves the second."""
    return Playbook.objects.create(
        slug=slug,
        name=fields.pop("name", "Tag it"),
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
                    "title": "Mark stage two",
                    "parameters": {"resource": "${instance.id}", "tags": {"stage": "two"}},
                    "approval": True,
                },
            ]
        },
        **fields,
    )


@pytest.fixture
def page_for(client):
    def signed_in(user):
        client.force_login(user)
        return client

    return signed_in


@pytest.fixture
def instance_id(account) -> str:
    ec2 = client("ec2", REGION)
    image = IMAGE_ID
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def add_instance(incident, instance_id):
    AffectedResource.objects.create(
        incident=incident,
        account_id=ACCOUNT_ID,
        region=REGION,
        identifier=instance_id,
        resource_type="AWS::EC2::Instance",
    )
    return incident


@pytest.fixture
def on_instance(incident, instance_id):
    return add_instance(incident, instance_id)


@pytest.fixture
def awaiting(on_instance, lead_actor, engine) -> PlaybookRun:
    """A run whose first step is done and whose second waits for a lead."""
    with engine():
        run = services.start_run(lead_actor, on_instance, gated_playbook())
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    return run


def url(name, incident, *args):
    return reverse(name, args=[incident.reference, *args])


def tags_of(instance_id: str) -> dict[str, str]:
    found = client("ec2", REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def test_pages_ask_to_sign_in(client, incident):
    answer = client.get(url("incident-response", incident))

    assert answer.status_code == 302
    assert answer.url.startswith(reverse("login"))


def test_outsider_finds_no_response_page(page_for, outsider, incident):
    assert page_for(outsider).get(url("incident-response", incident)).status_code == 404


def test_a_responder_not_on_a_restricted_incident_finds_nothing(
    page_for, other_responder, restricted_incident
):
    client = page_for(other_responder)

    assert client.get(url("incident-response", restricted_incident)).status_code == 404
    refused = client.post(url("run-start", restricted_incident), {"playbook": gated_playbook().pk})
    assert refused.status_code == 404


def test_a_responder_on_a_restricted_incident_works_its_response(
    page_for, responder, restricted_incident
):
    gated_playbook()

    answer = page_for(responder).get(url("incident-response", restricted_incident))

    assert answer.status_code == 200
    assert "Start playbook" in answer.text
    assert "Tag it (v1)" in answer.text


def test_leadership_reads_without_buttons_and_is_refused_changes(page_for, leadership, awaiting):
    client = page_for(leadership)
    incident = awaiting.incident
    gated = awaiting.steps.get(key="tag-again")
    done = awaiting.steps.get(key="tag-instance").action_run

    page = client.get(url("incident-response", incident))
    assert page.status_code == 200
    assert "Mark stage two" in page.text
    for button in ("Start playbook", "Run action", "Approve", "Reject", "Cancel run", "Undo"):
        assert f">{button}</button>" not in page.text

    posts = [
        (url("run-start", incident), {"playbook": awaiting.playbook.pk}),
        (url("step-approve", incident, gated.pk), {}),
        (url("step-reject", incident, gated.pk), {}),
        (url("run-cancel", incident, awaiting.pk), {}),
        (url("action-undo", incident, done.pk), {}),
        (url("action-request", incident), {"action": "tag_resource", "inputs": "resource=x"}),
    ]
    for path, data in posts:
        assert client.post(path, data).status_code == 403, path
    awaiting.refresh_from_db()
    assert awaiting.status == RunStatus.AWAITING_APPROVAL
    assert PlaybookRun.objects.count() == 1


def test_a_responder_may_cancel_but_not_approve(page_for, responder, awaiting):
    client = page_for(responder)
    incident = awaiting.incident
    gated = awaiting.steps.get(key="tag-again")

    page = client.get(url("incident-response", incident))
    assert ">Approve</button>" not in page.text
    assert ">Cancel run</button>" in page.text
    assert client.post(url("step-approve", incident, gated.pk)).status_code == 403
    gated.refresh_from_db()
    assert gated.state == StepState.AWAITING_APPROVAL


def test_a_lead_starts_a_playbook_approves_its_gate_and_it_succeeds(
    page_for, lead, on_instance, instance_id, engine
):
    client = page_for(lead)
    playbook = gated_playbook()

    with engine():
        started = client.post(url("run-start", on_instance), {"playbook": playbook.pk})
    run = PlaybookRun.objects.get()
    assert started.status_code == 302
    assert started.url.endswith(f"#run-{run.pk}")
    page = client.get(url("incident-response", on_instance))
    assert ">Approve</button>" in page.text
    assert "Refresh" not in page  # waiting for a person, not for a worker
    assert tags_of(instance_id) == {"ir-portal:incident": on_instance.reference}

    gated = run.steps.get(key="tag-again")
    with engine():
        client.post(url("step-approve", on_instance, gated.pk))
    run.refresh_from_db()
    gated.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (gated.state, gated.decided_by) == (StepState.SUCCEEDED, "lena")
    assert tags_of(instance_id)["stage"] == "two"

    page = client.get(url("incident-response", on_instance))
    assert "Succeeded" in page.text
    assert gated.action_run.request_ids[0] in page.text
    assert ">Approve</button>" not in page.text
    kinds = TimelineEntry.objects.filter(incident=on_instance).values_list("kind", flat=True)
    assert EntryKind.STEP_APPROVED in kinds


def test_a_lead_rejects_a_gate_with_a_reason(page_for, lead, awaiting, instance_id, engine):
    gated = awaiting.steps.get(key="tag-again")

    with engine():
        page_for(lead).post(
            url("step-reject", awaiting.incident, gated.pk), {"reason": "owner objects"}
        )
    gated.refresh_from_db()
    awaiting.refresh_from_db()
    assert gated.state == StepState.SKIPPED
    assert gated.reason == "rejected by lena: owner objects"
    assert awaiting.status == RunStatus.SUCCEEDED
    assert "stage" not in tags_of(instance_id)


def test_approving_a_step_twice_says_why_not(page_for, lead, awaiting, engine):
    client = page_for(lead)
    gated = awaiting.steps.get(key="tag-again")
    with engine():
        client.post(url("step-approve", awaiting.incident, gated.pk))

    again = client.post(url("step-approve", awaiting.incident, gated.pk), follow=True)

    assert "not awaiting approval" in again.text


def test_cancelling_a_run_cancels_its_waiting_step(page_for, responder, awaiting):
    answer = page_for(responder).post(
        url("run-cancel", awaiting.incident, awaiting.pk), {"reason": "false positive"}, follow=True
    )

    awaiting.refresh_from_db()
    assert awaiting.status == RunStatus.CANCELLED
    assert awaiting.cancelled_by == "rui"
    assert awaiting.steps.get(key="tag-again").state == StepState.CANCELLED
    assert f"Cancelled run {awaiting.pk}." in answer.text
    assert ">Cancel run</button>" not in answer.text


def test_a_step_of_another_incident_is_not_found(page_for, lead, awaiting, make_incident):
    other = make_incident(title="Something else")
    gated = awaiting.steps.get(key="tag-again")

    assert page_for(lead).post(url("step-approve", other, gated.pk)).status_code == 404


def test_malformed_inputs_are_shown_and_start_nothing(page_for, lead, on_instance):
    answer = page_for(lead).post(
        url("run-start", on_instance),
        {"playbook": gated_playbook().pk, "inputs": "instance.id i-0abc"},
    )

    assert answer.status_code == 200
    assert "Line 1 is not path=value" in answer.text
    assert not PlaybookRun.objects.exists()


def test_what_the_incident_lacks_is_named_per_step_and_starts_nothing(
    page_for, lead, incident, account
):
    answer = page_for(lead).post(url("run-start", incident), {"playbook": gated_playbook().pk})

    assert answer.status_code == 200
    assert (
        "Step tag-instance: parameters: the incident has no instance.id; "
        "give it as an input (instance.id=…)"
    ) in answer.text
    assert "Step tag-again: parameters" in answer.text
    assert "Refresh" not in answer
    assert not PlaybookRun.objects.exists()
    assert not ActionRun.objects.exists()


def test_inputs_given_at_start_fill_what_the_incident_lacks(
    page_for, lead, incident, instance_id, engine
):
    with engine():
        page_for(lead).post(
            url("run-start", incident),
            {
                "playbook": gated_playbook().pk,
                "inputs": f"instance.id={instance_id}\n\n{WHERE}",
                "dry_run": "on",
            },
        )

    run = PlaybookRun.objects.get()
    assert run.dry_run and run.status == RunStatus.SUCCEEDED
    assert run.steps.first().parameters["resource"] == instance_id
    assert "ir-portal:incident" not in tags_of(instance_id)  # a dry run calls no AWS


def test_a_disabled_or_older_playbook_is_not_offered(page_for, lead, incident):
    gated_playbook(slug="old", name="Old one")
    Playbook.objects.create(slug="old", version=2, name="Old one, renewed", definition={})
    gated_playbook(slug="off", name="Switched off", enabled=False)

    page = page_for(lead).get(url("incident-response", incident))

    assert "Old one, renewed (v2)" in page.text
    assert "Old one (v1)" not in page.text
    assert "Switched off" not in page.text


def test_the_page_reloads_itself_only_while_a_worker_has_work(page_for, lead, on_instance):
    client = page_for(lead)
    # No engine: the task is never sent, so the step stays queued.
    client.post(url("run-start", on_instance), {"playbook": gated_playbook().pk})

    assert client.get(url("incident-response", on_instance))["Refresh"] == "5"
    ActionRun.objects.update(state=ActionState.FAILED)
    PlaybookRun.objects.update(status=RunStatus.FAILED)
    RunStep.objects.update(state=StepState.FAILED)
    assert "Refresh" not in client.get(url("incident-response", on_instance))


def test_tagging_cannot_be_undone(page_for, responder, on_instance, instance_id, engine):
    client = page_for(responder)
    with engine():
        client.post(
            url("action-request", on_instance),
            {"action": "tag_resource", "inputs": "resource=${instance.id}"},
        )
    tagged = ActionRun.objects.get()
    assert (tagged.state, tagged.target) == (ActionState.SUCCEEDED, instance_id)

    page = client.get(url("incident-response", on_instance))
    assert tagged.outputs["summary"] in page.text
    assert ">Undo</button>" not in page.text
    refused = client.post(url("action-undo", on_instance, tagged.pk), follow=True)
    assert "cannot be undone" in refused.text
    tagged.refresh_from_db()
    assert tagged.state == ActionState.SUCCEEDED


def test_blocking_a_bucket_from_the_page_can_be_undone(
    page_for, responder, incident, account, engine
):
    s3 = client("s3", REGION)
    s3.create_bucket(
        Bucket="payroll-exports", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    client_ = page_for(responder)

    with engine():
        client_.post(
            url("action-request", incident),
            {"action": "s3_block_public_access", "inputs": f"bucket=payroll-exports\n{WHERE}"},
        )
    blocked = ActionRun.objects.get()
    assert blocked.state == ActionState.SUCCEEDED
    assert ">Undo</button>" in client_.get(url("incident-response", incident)).text

    with engine():
        undone = client_.post(url("action-undo", incident, blocked.pk), follow=True)
    assert "Asked to undo Block all public access to an S3 bucket on payroll-exports." in (
        undone.text
    )
    blocked.refresh_from_db()
    assert (blocked.state, blocked.undo_requested_by) == (ActionState.UNDONE, "rui")
    with pytest.raises(ClientError, match="NoSuchPublicAccessBlockConfiguration"):
        s3.get_public_access_block(Bucket="payroll-exports")


def test_a_direct_action_with_bad_inputs_says_which(page_for, responder, incident, account):
    answer = page_for(responder).post(
        url("action-request", incident),
        {"action": "s3_block_public_access", "inputs": f"bucket=no/slashes\n{WHERE}"},
    )

    assert answer.status_code == 200
    assert "bucket: This value does not match the required pattern." in answer.text
    assert not ActionRun.objects.exists()


def test_the_incident_page_links_to_its_response_and_counts_waiting_runs(
    page_for, responder, awaiting
):
    page = page_for(responder).get(reverse("incident-detail", args=[awaiting.incident.reference]))

    assert url("incident-response", awaiting.incident) in page.text
    assert "1 playbook run" in page.text
    assert "1 awaiting approval" in page.text


def test_the_response_page_costs_the_same_queries_for_more_runs(
    page_for, lead, on_instance, lead_actor, engine
):
    client = page_for(lead)
    playbook = gated_playbook()

    def queries() -> int:
        with engine():
            services.start_run(lead_actor, on_instance, playbook, dry_run=True)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("incident-response", on_instance)).status_code == 200
        return len(captured)

    first = queries()
    assert queries() == queries() == first


def test_the_library_shows_the_newest_version_of_each_playbook(page_for, responder):
    gated_playbook(description="Marks the instance as part of the incident.")
    Playbook.objects.create(
        slug="tag-it",
        version=2,
        name="Tag it better",
        definition={"steps": [{"id": "only", "action": "tag_resource", "parameters": {}}]},
    )

    page = page_for(responder).get(reverse("playbook-list"))

    assert page.status_code == 200
    assert "Tag it better" in page.text
    assert "v2" in page.text and "v1" not in page.text


def test_a_playbook_page_shows_its_steps_gates_and_export(page_for, responder):
    first = gated_playbook(description="Marks the instance as part of the incident.")
    Playbook.objects.create(slug="tag-it", version=2, name="Tag it better", definition={})
    client = page_for(responder)

    page = client.get(reverse("playbook-detail", args=["tag-it"]), {"version": 1})

    assert page.status_code == 200
    assert "Marks the instance as part of the incident." in page.text
    assert "Mark stage two" in page.text
    assert "${instance.id}" in page.text
    assert page.text.count("a lead approves") == 1
    assert "Stop the run" in page.text
    assert f"/api/v1/playbooks/{first.pk}/export/" in page.text
    assert client.get(reverse("playbook-detail", args=["nothing"])).status_code == 404


def test_integrations_use_the_api_not_the_library(page_for, integration):
    assert page_for(integration).get(reverse("playbook-list")).status_code == 403


def test_assignments_read_one_path_a_line():
    assert parse_assignments("instance.id = i-0abc\n\nregion=eu-west-1") == {
        "instance.id": "i-0abc",
        "region": "eu-west-1",
    }


def test_nested_refusals_read_as_one_line_per_problem():
    detail = {"steps": {"isolate": {"parameters": "no instance"}, "tag": {"region": ["needed"]}}}

    assert problems_in(detail) == [
        "Step isolate: parameters: no instance",
        "Step tag: region: needed",
    ]
