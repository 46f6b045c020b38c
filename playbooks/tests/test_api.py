"""The response engine through /api/v1/: accounts, the action library, playbooks and their
versions, runs and action runs, on the simulated account with the tagging action."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.core.management import call_command

from cases.models import AffectedResource, TimelineEntry
from playbooks.actions.base import REGISTRY, Outcome
from playbooks.actions.tagging import INCIDENT_TAG, TagResource
from playbooks.aws import client
from playbooks.choices import ActionState, RunStatus, StepState
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun
from playbooks.tests.conftest import ACCOUNT_ID, IMAGE_ID, REGION

pytestmark = pytest.mark.django_db

TAG_STEPS = [
    {"id": "tag-instance", "action": "tag_resource", "parameters": {"resource": "${instance.id}"}},
    {
        "id": "tag-again",
        "action": "tag_resource",
        "parameters": {"resource": "${instance.id}", "tags": {"stage": "two"}},
    },
]


class ReversibleTag(TagResource):
    """`tag_resource` with an undo, so undo is exercised without depending on the AWS
    actions written alongside this API."""

    name = "test_reversible_tag"
    title = "Tag a resource, reversibly"
    undoable = True

    def undo(self, ctx: Any, inputs: dict[str, Any], done: Outcome) -> Outcome:
        added = sorted(done.outputs.get("added", {}))
        ctx("ec2").delete_tags(Resources=[inputs["resource"]], Tags=[{"Key": k} for k in added])
        return Outcome(True, f"Removed {', '.join(added)} from {inputs['resource']}")


@pytest.fixture
def reversible(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(REGISTRY, ReversibleTag.name, ReversibleTag())
    return ReversibleTag.name


def tag_playbook(gate: bool = False, slug: str = "tag-it") -> Playbook:
    steps = [dict(step) for step in TAG_STEPS]
    if gate:
        steps[1]["approval"] = True
    return Playbook.objects.create(slug=slug, name="Tag it", definition={"steps": steps})


@pytest.fixture
def instance_id(account: CloudAccount) -> str:
    ec2 = client("ec2", REGION)
    image = IMAGE_ID
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


@pytest.fixture
def on_instance(incident: Any, instance_id: str) -> Any:
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


def tag_request(incident: Any, resource: str, action: str = "tag_resource", **more: Any) -> dict:
    parameters = {"resource": resource, "account_id": ACCOUNT_ID, "region": REGION}
    return {"incident": incident.reference, "action": action, "parameters": parameters, **more}


def start(api: Any, user: Any, incident: Any, playbook: Any, **more: Any) -> Any:
    return api(user).post(
        "/api/v1/runs/", {"incident": incident.reference, "playbook": playbook, **more}
    )


# --- Runs -----------------------------------------------------------------------------------


def test_a_run_started_through_the_api_tags_the_instance(
    api, lead, on_instance, instance_id, engine
):
    tag_playbook()

    with engine():
        answer = start(api, lead, on_instance, "tag-it")

    assert answer.status_code == 201, answer.json()
    run = api(lead).get(f"/api/v1/runs/{answer.json()['id']}/").json()
    assert run["status"] == RunStatus.SUCCEEDED
    assert run["actor"] == {"kind": "user", "name": "lena"}
    assert [s["state"] for s in run["steps"]] == [StepState.SUCCEEDED, StepState.SUCCEEDED]
    first = run["steps"][0]
    assert first["inputs"]["resource"] == instance_id
    assert first["action_run"]["state"] == ActionState.SUCCEEDED
    assert first["action_run"]["request_ids"]
    assert first["action_run"]["outputs"]["added"] == {INCIDENT_TAG: on_instance.reference}
    assert tags_of(instance_id) == {INCIDENT_TAG: on_instance.reference, "stage": "two"}


def test_a_run_is_started_by_playbook_id_with_inputs_the_incident_lacks(
    api, responder, incident, instance_id, engine
):
    playbook = tag_playbook()
    inputs = {"instance.id": instance_id, "account_id": ACCOUNT_ID, "region": REGION}

    with engine():
        answer = start(api, responder, incident, playbook.pk, inputs=inputs)

    assert answer.status_code == 201, answer.json()
    assert PlaybookRun.objects.get().status == RunStatus.SUCCEEDED
    assert tags_of(instance_id)[INCIDENT_TAG] == incident.reference


def test_a_slug_starts_the_newest_enabled_version(api, lead, on_instance):
    tag_playbook()
    newer = Playbook.objects.create(
        slug="tag-it", version=2, name="Tag it v2", definition={"steps": TAG_STEPS[:1]}
    )
    Playbook.objects.create(
        slug="tag-it", version=3, name="Draft", definition={"steps": TAG_STEPS}, enabled=False
    )

    answer = start(api, lead, on_instance, "tag-it", dry_run=True)

    assert answer.status_code == 201, answer.json()
    assert answer.json()["playbook"] == {
        "id": newer.pk,
        "slug": "tag-it",
        "version": 2,
        "name": "Tag it v2",
    }


def test_a_dry_run_records_what_would_be_done_and_calls_no_aws(api, lead, on_instance, instance_id):
    tag_playbook()

    answer = start(api, lead, on_instance, "tag-it", dry_run=True)

    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == RunStatus.SUCCEEDED and body["dry_run"] is True
    assert all(s["action_run"]["outputs"]["dry_run"] for s in body["steps"])
    assert tags_of(instance_id) == {}


def test_a_gated_step_is_approved_by_a_lead_through_the_api(
    api, lead, responder, on_instance, instance_id, engine
):
    tag_playbook(gate=True)
    with engine():
        run = start(api, responder, on_instance, "tag-it").json()
    assert PlaybookRun.objects.get().status == RunStatus.AWAITING_APPROVAL
    approve = f"/api/v1/runs/{run['id']}/steps/tag-again/approve/"

    refused = api(responder).post(approve)
    with engine():
        approved = api(lead).post(approve)

    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only a lead approves or rejects a step."
    assert approved.status_code == 200, approved.json()
    assert approved.json()["steps"][1]["decided_by"] == "lena"
    assert PlaybookRun.objects.get().status == RunStatus.SUCCEEDED
    assert tags_of(instance_id)["stage"] == "two"


def test_a_rejected_step_is_skipped_and_the_run_goes_on(
    api, lead, on_instance, instance_id, engine
):
    tag_playbook(gate=True)
    with engine():
        run = start(api, lead, on_instance, "tag-it").json()

    answer = api(lead).post(
        f"/api/v1/runs/{run['id']}/steps/tag-again/reject/", {"reason": "not this one"}
    )

    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["status"] == RunStatus.SUCCEEDED
    assert body["steps"][1]["state"] == StepState.SKIPPED
    assert body["steps"][1]["reason"] == "rejected by lena: not this one"
    assert "stage" not in tags_of(instance_id)


def test_approving_a_step_that_does_not_wait_is_refused_with_409(api, lead, on_instance):
    tag_playbook(gate=True)
    run = start(api, lead, on_instance, "tag-it").json()

    twice = [
        api(lead).post(f"/api/v1/runs/{run['id']}/steps/tag-instance/approve/"),
        api(lead).post(f"/api/v1/runs/{run['id']}/steps/no-such-step/approve/"),
    ]

    assert [a.status_code for a in twice] == [409, 404]
    assert twice[0].json()["code"] == "conflict"


def test_cancelling_a_run_cancels_the_steps_that_wait(api, responder, on_instance):
    tag_playbook(gate=True)
    run = start(api, responder, on_instance, "tag-it").json()

    answer = api(responder).post(f"/api/v1/runs/{run['id']}/cancel/", {"reason": "false alarm"})
    again = api(responder).post(f"/api/v1/runs/{run['id']}/cancel/")

    assert answer.status_code == 200, answer.json()
    assert answer.json()["status"] == RunStatus.CANCELLED
    assert answer.json()["cancelled_by"] == "rui"
    assert answer.json()["steps"][1]["state"] == StepState.CANCELLED
    assert again.status_code == 409
    assert TimelineEntry.objects.filter(summary__endswith="false alarm").exists()


def test_runs_are_filtered_by_incident_status_and_playbook(api, lead, make_incident, account):
    first, second = make_incident(), make_incident()
    tag_playbook()
    tag_playbook(gate=True, slug="gated")
    inputs = {"instance.id": "i-0abc", "account_id": ACCOUNT_ID, "region": REGION}
    start(api, lead, first, "tag-it", dry_run=True, inputs=inputs)
    start(api, lead, second, "gated", inputs=inputs)

    def listed(**query: str) -> list[str]:
        body = api(lead).get("/api/v1/runs/", query).json()
        return [r["playbook"]["slug"] for r in body["results"]]

    assert listed(incident=first.reference) == ["tag-it"]
    assert listed(status="running") == ["gated"]  # its first step waits for a worker
    assert listed(status="succeeded") == ["tag-it"]
    assert listed(playbook="gated") == ["gated"]
    assert sorted(listed()) == ["gated", "tag-it"]


# --- Refusals with a reason per field ---------------------------------------------------------


def test_a_run_missing_an_input_is_refused_naming_the_step(api, lead, incident, account):
    tag_playbook()

    answer = start(api, lead, incident, "tag-it")

    assert answer.status_code == 400
    problems = answer.json()["steps"]
    assert set(problems) == {"tag-instance", "tag-again"}
    assert "instance.id" in problems["tag-instance"]["parameters"]
    assert not PlaybookRun.objects.exists()


def test_a_run_in_an_unregistered_account_is_refused(api, lead, incident, account):
    tag_playbook()
    inputs = {"instance.id": "i-0abc", "account_id": "210987654321", "region": REGION}

    answer = start(api, lead, incident, "tag-it", inputs=inputs)

    assert answer.status_code == 400
    assert answer.json()["steps"]["tag-instance"] == {
        "account_id": "account 210987654321 is not registered"
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"playbook": "no-such-playbook"}, "playbook"),
        ({"incident": "IR-1999-0001"}, "incident"),
        ({"inputs": {"not a path": "x"}}, "inputs"),
    ],
)
def test_a_run_is_refused_with_the_field_at_fault(api, lead, incident, body, field):
    tag_playbook()
    asked = {"incident": incident.reference, "playbook": "tag-it", **body}

    answer = api(lead).post("/api/v1/runs/", asked)

    assert answer.status_code == 400
    assert list(answer.json()) == [field]


def test_a_disabled_playbook_is_refused_with_409(api, lead, incident, account):
    playbook = tag_playbook()
    playbook.enabled = False
    playbook.save()

    answer = start(api, lead, incident, playbook.pk, inputs={"instance.id": "i-0abc"})

    assert answer.status_code == 409


def test_an_action_in_an_unregistered_account_is_refused(api, lead, incident, account):
    asked = tag_request(incident, "i-0abc")
    asked["parameters"]["account_id"] = "210987654321"

    answer = api(lead).post("/api/v1/action-runs/", asked)

    assert answer.status_code == 400
    assert answer.json() == {"parameters": {"account_id": "account 210987654321 is not registered"}}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"action": "launch_missiles"}, {"action"}),
        ({"parameters": {"account_id": ACCOUNT_ID, "region": REGION}}, {"parameters"}),
    ],
)
def test_an_action_is_refused_with_the_field_at_fault(api, lead, incident, account, change, errors):
    answer = api(lead).post("/api/v1/action-runs/", {**tag_request(incident, "i-0"), **change})

    assert answer.status_code == 400
    assert set(answer.json()) == errors
    if "parameters" in errors:
        assert "resource" in answer.json()["parameters"]


# --- Action runs ------------------------------------------------------------------------------


def test_asking_twice_for_an_action_returns_the_first_run(
    api, responder, on_instance, instance_id, engine
):
    with engine():
        first = api(responder).post("/api/v1/action-runs/", tag_request(on_instance, instance_id))
    again = api(responder).post("/api/v1/action-runs/", tag_request(on_instance, instance_id))

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["state"] == ActionState.SUCCEEDED
    assert ActionRun.objects.count() == 1
    assert tags_of(instance_id) == {INCIDENT_TAG: on_instance.reference}


def test_an_action_is_undone_through_the_api(
    api, responder, on_instance, instance_id, reversible, engine
):
    with engine():
        done = api(responder).post(
            "/api/v1/action-runs/", tag_request(on_instance, instance_id, action=reversible)
        )
    assert tags_of(instance_id) == {INCIDENT_TAG: on_instance.reference}

    with engine():
        answer = api(responder).post(f"/api/v1/action-runs/{done.json()['id']}/undo/")

    assert answer.status_code == 202, answer.json()
    assert answer.json()["state"] == ActionState.UNDOING
    undone = api(responder).get(f"/api/v1/action-runs/{done.json()['id']}/").json()
    assert undone["state"] == ActionState.UNDONE
    assert undone["undo_requested_by"] == "rui"
    assert tags_of(instance_id) == {}


def test_an_action_that_cannot_be_undone_is_refused_with_409(
    api, responder, on_instance, instance_id, engine
):
    with engine():
        done = api(responder).post("/api/v1/action-runs/", tag_request(on_instance, instance_id))

    answer = api(responder).post(f"/api/v1/action-runs/{done.json()['id']}/undo/")

    assert answer.status_code == 409
    assert done.json()["undoable"] is False


def test_action_runs_are_filtered_by_incident_action_and_state(
    api, lead, make_incident, account, reversible
):
    first, second = make_incident(), make_incident()
    api(lead).post("/api/v1/action-runs/", tag_request(first, "i-0abc", dry_run=True))
    api(lead).post("/api/v1/action-runs/", tag_request(second, "i-0def", action=reversible))

    def listed(**query: str) -> list[str]:
        body = api(lead).get("/api/v1/action-runs/", query).json()
        return [r["target"] for r in body["results"]]

    assert listed(incident=first.reference) == ["i-0abc"]
    assert listed(action=reversible) == ["i-0def"]
    assert listed(state="queued") == ["i-0def"]
    assert listed(state="succeeded") == ["i-0abc"]


# --- Accounts ---------------------------------------------------------------------------------


def new_account(**fields: Any) -> dict[str, Any]:
    return {
        "account_id": "210987654321",
        "name": "Payments production",
        "environment": "production",
        "regions": ["eu-west-1", "us-gov-west-1"],
        "role_arn": "arn:aws:iam::210987654321:role/ir-portal-responder",
        **fields,
    }


def test_a_lead_registers_an_account(api, lead):
    answer = api(lead).post("/api/v1/accounts/", new_account(external_id="shared-secret-ish"))

    assert answer.status_code == 201, answer.json()
    assert CloudAccount.objects.get().external_id == "shared-secret-ish"
    assert answer.json()["check_ok"] is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"account_id": "21098765432"}, {"account_id": ["An AWS account id is 12 digits."]}),
        (
            {"role_arn": "arn:aws:iam::210987654321:user/bob"},
            {"role_arn": ["Not an IAM role ARN."]},
        ),
        (
            {"role_arn": "arn:aws:iam::123456789012:role/ir"},
            {"role_arn": ["The role is in account 123456789012, not 210987654321."]},
        ),
        ({"regions": ["Ireland"]}, {"regions": {"0": ["Not an AWS region (eu-west-1)."]}}),
    ],
)
def test_an_account_is_refused_with_the_field_at_fault(api, lead, fields, error):
    answer = api(lead).post("/api/v1/accounts/", new_account(**fields))

    assert answer.status_code == 400
    assert answer.json() == error


def test_there_is_one_security_account(api, lead):
    CloudAccount.objects.create(
        account_id="111111111111", name="Security", environment="security", is_security_account=True
    )
    client_ = api(lead)

    second = client_.post("/api/v1/accounts/", new_account(is_security_account=True))
    ordinary = client_.post("/api/v1/accounts/", new_account())

    assert second.status_code == 400
    assert list(second.json()) == ["is_security_account"]
    assert ordinary.status_code == 201, ordinary.json()


def test_the_external_id_is_shown_to_leads_only(api, lead, responder, account):
    as_lead = api(lead).get(f"/api/v1/accounts/{account.pk}/").json()
    as_responder = api(responder).get(f"/api/v1/accounts/{account.pk}/").json()

    assert as_lead["external_id"] == "ir-portal-tests"
    assert "external_id" not in as_responder
    assert as_responder["account_id"] == ACCOUNT_ID


def test_checking_an_account_records_that_the_role_can_be_assumed(api, lead, account):
    answer = api(lead).post(f"/api/v1/accounts/{account.pk}/check/")

    assert answer.status_code == 200, answer.json()
    assert answer.json()["check_ok"] is True
    assert answer.json()["check_message"] == "ok"
    assert answer.json()["checked_at"]


def test_an_account_actions_ran_in_is_disabled_not_removed(api, lead, incident, account):
    api(lead).post("/api/v1/action-runs/", tag_request(incident, "i-0abc", dry_run=True))

    answer = api(lead).delete(f"/api/v1/accounts/{account.pk}/")

    assert answer.status_code == 409
    assert CloudAccount.objects.filter(pk=account.pk).exists()


# --- The action library -----------------------------------------------------------------------


def test_the_library_describes_each_action_and_its_inputs(api, responder):
    body = api(responder).get("/api/v1/actions/tag_resource/").json()

    assert body["requires_approval"] is False and body["undoable"] is False
    assert body["target_kind"] == "resource"
    inputs = {i["name"]: i for i in body["inputs"]}
    assert set(inputs) == {"account_id", "region", "resource", "tags"}
    assert inputs["resource"]["type"] == "string" and inputs["resource"]["required"] is True
    assert inputs["tags"] == {
        "name": "tags",
        "type": "object",
        "required": False,
        "help_text": "Extra tags; the incident tag is always added.",
        "default": {},
        "choices": None,
    }


def test_the_library_lists_every_registered_action(api, responder):
    body = api(responder).get("/api/v1/actions/", {"page_size": 200}).json()

    assert {a["name"] for a in body["results"]} == set(REGISTRY)
    assert body["count"] == len(REGISTRY)
    assert api(responder).get("/api/v1/actions/launch_missiles/").status_code == 404


# --- Playbooks --------------------------------------------------------------------------------


def new_playbook(**fields: Any) -> dict[str, Any]:
    return {
        "slug": "tag-it",
        "name": "Tag it",
        "description": "Mark what the incident touched.",
        "definition": {"steps": TAG_STEPS},
        **fields,
    }


def test_a_lead_writes_a_playbook_as_version_one(api, lead):
    answer = api(lead).post("/api/v1/playbooks/", new_playbook())

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["version"], body["created_by"], body["enabled"]) == (1, "lena", True)
    assert body["definition"]["steps"][0]["on_failure"] == "stop"


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        ({"steps": []}, {"steps": {"non_field_errors": ["This list may not be empty."]}}),
        ("steps: []", ["A definition is a mapping with a list of steps."]),
        (
            {"steps": [{"id": "x", "action": "tag_resource", "parameters": {"colour": "red"}}]},
            {"steps": {"0": {"parameters": ["tag_resource takes no colour"]}}},
        ),
        (
            {"steps": [TAG_STEPS[0], TAG_STEPS[0]]},
            {"steps": ["two steps are called 'tag-instance'"]},
        ),
    ],
)
def test_a_bad_definition_is_refused_field_by_field(api, lead, definition, error):
    answer = api(lead).post("/api/v1/playbooks/", new_playbook(definition=definition))

    assert answer.status_code == 400
    assert answer.json() == {"definition": error}
    assert not Playbook.objects.exists()


def test_an_unknown_action_is_named_in_the_error(api, lead):
    steps = [{"id": "x", "action": "launch_missiles"}]

    answer = api(lead).post("/api/v1/playbooks/", new_playbook(definition={"steps": steps}))

    assert answer.status_code == 400
    message = answer.json()["definition"]["steps"]["0"]["action"][0]
    assert message.startswith("no action named 'launch_missiles'")


def test_changing_a_playbook_saves_the_next_version_and_keeps_the_old(api, lead):
    first = api(lead).post("/api/v1/playbooks/", new_playbook()).json()

    answer = api(lead).patch(
        f"/api/v1/playbooks/{first['id']}/", {"definition": {"steps": TAG_STEPS[:1]}}
    )

    assert answer.status_code == 200, answer.json()
    assert answer.json()["version"] == 2 and answer.json()["id"] != first["id"]
    kept = Playbook.objects.get(pk=first["id"])
    assert kept.version == 1 and len(kept.steps) == 2
    assert len(Playbook.objects.get(pk=answer.json()["id"]).steps) == 1


def test_enabling_is_switched_in_place_and_same_content_makes_no_version(api, lead):
    first = api(lead).post("/api/v1/playbooks/", new_playbook()).json()

    answer = api(lead).put(f"/api/v1/playbooks/{first['id']}/", new_playbook(enabled=False))

    assert answer.status_code == 200, answer.json()
    assert answer.json()["id"] == first["id"] and answer.json()["enabled"] is False
    assert Playbook.objects.count() == 1


def test_a_slug_is_written_once(api, lead):
    first = api(lead).post("/api/v1/playbooks/", new_playbook()).json()

    again = api(lead).post("/api/v1/playbooks/", new_playbook())
    renamed = api(lead).patch(f"/api/v1/playbooks/{first['id']}/", {"slug": "other"})

    assert (again.status_code, renamed.status_code) == (400, 400)
    assert list(again.json()) == list(renamed.json()) == ["slug"]


def test_the_list_shows_the_newest_version_unless_all_are_asked_for(api, responder):
    tag_playbook()
    Playbook.objects.create(slug="tag-it", version=2, name="Tag it", definition={"steps": []})
    tag_playbook(slug="other")

    newest = api(responder).get("/api/v1/playbooks/").json()["results"]
    every = api(responder).get("/api/v1/playbooks/", {"all_versions": "true"}).json()["results"]

    assert [(p["slug"], p["version"]) for p in newest] == [("other", 1), ("tag-it", 2)]
    assert len(every) == 3
    old = Playbook.objects.get(slug="tag-it", version=1)
    assert api(responder).get(f"/api/v1/playbooks/{old.pk}/").status_code == 200


def test_a_playbook_exported_and_imported_comes_back_the_same(api, lead):
    first = api(lead).post("/api/v1/playbooks/", new_playbook()).json()

    exported = api(lead).get(f"/api/v1/playbooks/{first['id']}/export/")
    same = api(lead).post(
        "/api/v1/playbooks/import/", exported.content, content_type="application/yaml"
    )
    document = yaml.safe_load(exported.content)
    document["steps"] = document["steps"][:1]
    changed = api(lead).post(
        "/api/v1/playbooks/import/", {"yaml": yaml.safe_dump(document)}, format="json"
    )

    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("application/yaml")
    assert document["slug"] == "tag-it" and document["name"] == "Tag it"
    assert same.status_code == 200 and same.json()["id"] == first["id"]
    assert changed.status_code == 201, changed.json()
    assert changed.json()["version"] == 2
    assert changed.json()["definition"] == {"steps": [{**TAG_STEPS[0], "on_failure": "stop"}]}


def test_importing_a_new_slug_makes_version_one(api, lead):
    document = yaml.safe_dump({"slug": "fresh", "name": "Fresh", "steps": TAG_STEPS})

    answer = api(lead).post("/api/v1/playbooks/import/", document, content_type="application/yaml")

    assert answer.status_code == 201, answer.json()
    assert (answer.json()["slug"], answer.json()["version"]) == ("fresh", 1)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("steps: [unclosed", "yaml"),
        ("- a list", "yaml"),
        ("slug: x\nname: X\nsteps:\n  - id: a\n    action: launch_missiles\n", "steps"),
        ("slug: Not A Slug\nname: X\nsteps: []\n", "slug"),
    ],
)
def test_a_bad_document_is_refused_with_the_field_at_fault(api, lead, document, field):
    answer = api(lead).post("/api/v1/playbooks/import/", document, content_type="application/yaml")

    assert answer.status_code == 400
    assert field in answer.json()
    assert not Playbook.objects.exists()


# --- Query counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 12])
def test_list_queries_do_not_grow_with_the_rows(
    api, responder, make_incident, account, django_assert_max_num_queries, rows
):
    tag_playbook()
    inputs = {"instance.id": "i-0abc", "account_id": ACCOUNT_ID, "region": REGION}
    for n in range(rows):
        incident = make_incident()
        start(api, responder, incident, "tag-it", dry_run=True, inputs=inputs)
        Playbook.objects.create(slug=f"p{n}", name="P", definition={"steps": TAG_STEPS})
        CloudAccount.objects.create(account_id=f"{n:012d}", name="A", environment="sandbox")
    client_ = api(responder)

    # count, the page's keys, its rows; runs add their steps with their action runs.
    limits = {"runs": 4, "action-runs": 3, "playbooks": 3, "accounts": 3, "actions": 0}
    for path, limit in limits.items():
        with django_assert_max_num_queries(limit):
            answer = client_.get(f"/api/v1/{path}/", {"page_size": 50})
        assert answer.status_code == 200
        assert answer.json()["count"] >= (len(REGISTRY) if path == "actions" else rows)


# --- Schema -----------------------------------------------------------------------------------


def test_the_schema_documents_the_response_engine(tmp_path):
    path = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))

    paths = yaml.safe_load(path.read_text())["paths"]
    approve = paths["/api/v1/runs/{id}/steps/{key}/approve/"]["post"]
    assert set(approve["responses"]) >= {"200", "409"}
    assert set(paths["/api/v1/action-runs/"]["post"]["responses"]) >= {"200", "201"}
    assert (
        "application/yaml" in paths["/api/v1/playbooks/import/"]["post"]["requestBody"]["content"]
    )
    assert "/api/v1/accounts/{id}/check/" in paths
