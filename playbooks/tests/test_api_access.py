"""Who may do what with the response engine's API, role by role.

Configuration (accounts, the action library, playbooks): accounts are read by anyone
holding a role and kept by leads; the library and playbooks say nothing about any incident
and are read by anyone signed in; leads write playbooks. Runs and action runs follow their
incident: hidden where it is hidden (404; in a request body, "does not exist" as for a
reference nobody has), read-only where `Incident.may_change` says so (403), and only leads
approve or reject a step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from cases.models import Incident, Participant, TimelineEntry
from irportal.actors import Actor
from playbooks import services
from playbooks.actions.base import REGISTRY
from playbooks.choices import ActionState
from playbooks.models import ActionRun, CloudAccount, Playbook
from playbooks.tests.conftest import ACCOUNT_ID, REGION
from playbooks.tests.test_api import TAG_STEPS, ReversibleTag

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    body: Any = None
    ok: int = 200
    content_type: str | None = None

    def send(self, client: APIClient, ids: dict[str, Any]) -> Any:
        body = self.body(ids) if callable(self.body) else self.body
        send = getattr(client, self.method.lower())
        if self.content_type:
            return send(self.path.format(**ids), body, content_type=self.content_type)
        return send(self.path.format(**ids), body)


def by_name(calls: list[Call]) -> Any:
    return pytest.mark.parametrize("call", calls, ids=[c.name for c in calls])


NEW_ACCOUNT = {"account_id": "210987654321", "name": "Payments", "environment": "production"}
NEW_PLAYBOOK = {"slug": "new-one", "name": "New", "definition": {"steps": TAG_STEPS}}
DOCUMENT = yaml.safe_dump({"slug": "imported", "name": "Imported", "steps": TAG_STEPS})

ACCOUNT_READS = [
    Call("account-list", "GET", "/api/v1/accounts/"),
    Call("account", "GET", "/api/v1/accounts/{account}/"),
]
ACCOUNT_WRITES = [
    Call("account-add", "POST", "/api/v1/accounts/", NEW_ACCOUNT, 201),
    Call("account-update", "PATCH", "/api/v1/accounts/{account}/", {"notes": "Payments team"}),
    Call("account-remove", "DELETE", "/api/v1/accounts/{spare_account}/", ok=204),
    Call("account-check", "POST", "/api/v1/accounts/{account}/check/"),
]
LIBRARY_READS = [
    Call("action-list", "GET", "/api/v1/actions/"),
    Call("action", "GET", "/api/v1/actions/tag_resource/"),
    Call("playbook-list", "GET", "/api/v1/playbooks/"),
    Call("playbook", "GET", "/api/v1/playbooks/{playbook}/"),
    Call("playbook-export", "GET", "/api/v1/playbooks/{playbook}/export/"),
]
PLAYBOOK_WRITES = [
    Call("playbook-add", "POST", "/api/v1/playbooks/", NEW_PLAYBOOK, 201),
    Call("playbook-update", "PATCH", "/api/v1/playbooks/{playbook}/", {"name": "Renamed"}),
    Call("playbook-import", "POST", "/api/v1/playbooks/import/", DOCUMENT, 201, "application/yaml"),
]
CONFIGURATION = ACCOUNT_READS + ACCOUNT_WRITES + LIBRARY_READS + PLAYBOOK_WRITES

INCIDENT_READS = [
    Call("run", "GET", "/api/v1/runs/{run}/"),
    Call("action-run", "GET", "/api/v1/action-runs/{action_run}/"),
]
INCIDENT_WRITES = [
    Call(
        "run-start",
        "POST",
        "/api/v1/runs/",
        lambda ids: {
            "incident": ids["ref"],
            "playbook": "gated",
            "inputs": {"instance.id": "i-0def", "account_id": ACCOUNT_ID, "region": REGION},
        },
        201,
    ),
    Call("run-cancel", "POST", "/api/v1/runs/{run}/cancel/", {"reason": "done by hand"}),
    Call(
        "action-request",
        "POST",
        "/api/v1/action-runs/",
        lambda ids: {
            "incident": ids["ref"],
            "action": "tag_resource",
            "parameters": {"resource": "i-0def", "account_id": ACCOUNT_ID, "region": REGION},
        },
        201,
    ),
    Call("action-undo", "POST", "/api/v1/action-runs/{action_run}/undo/", ok=202),
]
LEAD_WRITES = [
    Call("step-approve", "POST", "/api/v1/runs/{run}/steps/tag-instance/approve/"),
    Call("step-reject", "POST", "/api/v1/runs/{run}/steps/tag-instance/reject/", {"reason": "no"}),
]
INCIDENT_CALLS = INCIDENT_READS + INCIDENT_WRITES + LEAD_WRITES
CREATES = {"run-start", "action-request"}


@pytest.fixture
def reversible(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(REGISTRY, ReversibleTag.name, ReversibleTag())
    return ReversibleTag.name


@pytest.fixture
def configuration(db: None) -> dict[str, Any]:
    """An account, one with nothing run in it, and a playbook whose first step is gated."""
    account = CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Simulated",
        environment="demo",
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
        external_id="ir-portal-tests",
    )
    spare = CloudAccount.objects.create(
        account_id="111111111111", name="Old", environment="sandbox"
    )
    steps = [{**TAG_STEPS[0], "approval": True}, TAG_STEPS[1]]
    playbook = Playbook.objects.create(slug="gated", name="Gated", definition={"steps": steps})
    return {"account": account.pk, "spare_account": spare.pk, "playbook": playbook.pk}


@pytest.fixture
def furnish(configuration: dict[str, Any], reversible: str, lead: Any) -> Any:
    """Give an incident a run waiting at its gate and an undoable action that succeeded."""

    def furnish_incident(incident: Incident) -> dict[str, Any]:
        actor = Actor.for_user(lead)
        playbook = Playbook.objects.get(pk=configuration["playbook"])
        where = {"instance.id": "i-0abc", "account_id": ACCOUNT_ID, "region": REGION}
        run = services.start_run(actor, incident, playbook, inputs=where)
        inputs = {"resource": "i-0abc", "tags": {}, "account_id": ACCOUNT_ID, "region": REGION}
        done = ActionRun(
            incident=incident,
            action=reversible,
            target="i-0abc",
            parameters=inputs,
            idempotency_key=hashlib.sha256(f"{incident.pk}".encode()).hexdigest(),
            account_id=configuration["account"],
            region=REGION,
            state=ActionState.SUCCEEDED,
            changed=True,
            outputs={"added": {"ir-portal:incident": incident.reference}},
        )
        done.set_actor(actor)
        done.save()
        return {**configuration, "ref": incident.reference, "run": run.pk, "action_run": done.pk}

    return furnish_incident


def cast(request: pytest.FixtureRequest, name: str, incident: Incident | None = None) -> Any:
    """A conftest user by fixture name; `participant` is the no-role `outsider` taking
    part in `incident` as a responder."""
    if name == "participant":
        user = request.getfixturevalue("outsider")
        Participant.objects.create(incident=incident, user=user, role="responder")
        return user
    return request.getfixturevalue(name)


# --- Signing in -------------------------------------------------------------------------------


@by_name(CONFIGURATION + INCIDENT_CALLS)
def test_anonymous_is_refused_everywhere(api, incident, furnish, call):
    ids = furnish(incident)
    entries = TimelineEntry.objects.count()

    answer = call.send(api(None), ids)

    assert answer.status_code == 401
    assert TimelineEntry.objects.count() == entries


# --- Configuration ----------------------------------------------------------------------------

EVERYONE = ["lead", "superuser", "responder", "leadership", "integration", "outsider"]


def allowed_configuration(name: str, call: Call) -> bool:
    if name in ("lead", "superuser"):
        return True
    if call in ACCOUNT_READS:
        return name != "outsider"
    return call in LIBRARY_READS


@by_name(CONFIGURATION)
@pytest.mark.parametrize("name", EVERYONE)
def test_who_may_read_and_keep_the_configuration(request, api, configuration, name, call):
    if call.name == "account-check" and name in ("lead", "superuser"):
        request.getfixturevalue("aws")  # the check assumes the role in the simulated account
    accounts, playbooks = CloudAccount.objects.count(), Playbook.objects.count()

    answer = call.send(api(request.getfixturevalue(name)), configuration)

    if allowed_configuration(name, call):
        assert answer.status_code == call.ok, answer.content
    else:
        assert answer.status_code == 403, answer.content
        assert (CloudAccount.objects.count(), Playbook.objects.count()) == (accounts, playbooks)
        CloudAccount.objects.get(pk=configuration["account"], notes="", checked_at=None)
        assert Playbook.objects.get(pk=configuration["playbook"]).name == "Gated"


# --- Runs and action runs: seeing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("lead", {"open", "restricted"}),
        ("superuser", {"open", "restricted"}),
        ("responder", {"open", "restricted"}),  # takes part in the restricted one
        ("other_responder", {"open"}),
        ("leadership", {"open"}),
        ("integration", {"open"}),
        ("outsider", set()),
        ("participant", {"restricted"}),
    ],
)
def test_lists_show_runs_of_visible_incidents_only(
    request, api, incident, restricted_incident, furnish, name, sees
):
    furnish(incident)
    furnish(restricted_incident)
    client = api(cast(request, name, restricted_incident))
    which = {incident.reference: "open", restricted_incident.reference: "restricted"}

    runs = client.get("/api/v1/runs/").json()
    action_runs = client.get("/api/v1/action-runs/").json()

    assert {which[r["incident"]] for r in runs["results"]} == sees
    assert {which[r["incident"]] for r in action_runs["results"]} == sees
    assert runs["count"] == action_runs["count"] == len(sees)


@by_name(INCIDENT_CALLS)
def test_runs_of_a_hidden_incident_are_not_found(
    request, api, incident, restricted_incident, furnish, call
):
    """404 for everything under a hidden incident; naming it in a body is answered as for a
    reference nobody has; and the refusal changes nothing."""
    hidden = [
        (restricted_incident, "other_responder"),
        (restricted_incident, "leadership"),
        (restricted_incident, "integration"),
        (restricted_incident, "outsider"),
        (incident, "outsider"),
    ]
    ids = {incident.pk: furnish(incident), restricted_incident.pk: furnish(restricted_incident)}
    entries, action_runs = TimelineEntry.objects.count(), ActionRun.objects.count()

    answers = {
        f"{name} on {target.title}": call.send(api(request.getfixturevalue(name)), ids[target.pk])
        for target, name in hidden
    }

    expected = 400 if call.name in CREATES else 404
    assert {k: a.status_code for k, a in answers.items()} == dict.fromkeys(answers, expected)
    if call.name in CREATES:
        assert all(list(a.json()) == ["incident"] for a in answers.values())
    assert (TimelineEntry.objects.count(), ActionRun.objects.count()) == (entries, action_runs)


@pytest.mark.parametrize("path", ["/api/v1/runs/", "/api/v1/action-runs/"])
def test_a_hidden_incident_is_answered_as_a_missing_one(
    api, other_responder, restricted_incident, configuration, path
):
    body = {"playbook": "gated", "action": "tag_resource", "parameters": {}}

    def answer_for(reference: str) -> tuple[int, str]:
        answer = api(other_responder).post(path, {**body, "incident": reference})
        return answer.status_code, answer.content.decode().replace(reference, "<ref>")

    assert answer_for(restricted_incident.reference) == answer_for("IR-1999-0001")


# --- Runs and action runs: acting ---------------------------------------------------------------

MAY_CHANGE = {"lead", "superuser", "responder", "other_responder", "integration", "participant"}


def allowed_on_incident(name: str, call: Call) -> bool:
    if call in INCIDENT_READS:
        return True
    if call in LEAD_WRITES:
        return name in ("lead", "superuser")
    return name in MAY_CHANGE


@by_name(INCIDENT_READS + INCIDENT_WRITES + LEAD_WRITES)
@pytest.mark.parametrize(
    "name",
    [
        "lead",
        "superuser",
        "responder",
        "other_responder",
        "integration",
        "participant",
        "leadership",
    ],
)
def test_who_may_act_on_a_visible_incident(request, api, incident, furnish, name, call):
    ids = furnish(incident)
    client = api(cast(request, name, incident))
    entries = TimelineEntry.objects.count()

    answer = call.send(client, ids)

    if allowed_on_incident(name, call):
        assert answer.status_code == call.ok, answer.content
    else:
        assert answer.status_code == 403, answer.content
        assert TimelineEntry.objects.count() == entries


@by_name(INCIDENT_READS + INCIDENT_WRITES + LEAD_WRITES)
@pytest.mark.parametrize("name", ["lead", "responder", "participant"])
def test_those_on_a_restricted_incident_work_it(
    request, api, restricted_incident, furnish, name, call
):
    ids = furnish(restricted_incident)
    client = api(cast(request, name, restricted_incident))

    answer = call.send(client, ids)

    expected = call.ok if allowed_on_incident(name, call) else 403
    assert answer.status_code == expected, answer.content


@by_name(INCIDENT_WRITES + LEAD_WRITES)
def test_leadership_on_a_restricted_incident_reads_but_does_not_act(
    api, leadership, restricted_incident, furnish, call
):
    Participant.objects.create(incident=restricted_incident, user=leadership, role="liaison")
    ids = furnish(restricted_incident)
    client = api(leadership)

    reads = [read.send(client, ids).status_code for read in INCIDENT_READS]
    answer = call.send(client, ids)

    assert reads == [200, 200]
    assert answer.status_code == 403
    assert answer.json()["detail"] == "You can read this incident but not change it."


def test_an_action_that_needs_approval_is_asked_for_directly_by_leads_only(
    api, responder, lead, incident, configuration, monkeypatch
):
    gated = ReversibleTag()
    monkeypatch.setattr(gated, "requires_approval", True)
    monkeypatch.setitem(REGISTRY, gated.name, gated)
    body = {
        "incident": incident.reference,
        "action": gated.name,
        "parameters": {"resource": "i-0abc", "account_id": ACCOUNT_ID, "region": REGION},
    }

    refused = api(responder).post("/api/v1/action-runs/", body)
    dry = api(responder).post("/api/v1/action-runs/", {**body, "dry_run": True})
    done = api(lead).post("/api/v1/action-runs/", body)

    assert (refused.status_code, dry.status_code, done.status_code) == (403, 201, 201)
