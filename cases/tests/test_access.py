"""Who may see and change what, role by role, through the API and the admin.

The rules: a restricted incident is known only to its participants, leads and superusers;
responders, leadership and integrations see every other incident; someone with no role sees
only what they take part in. Changing needs `Incident.may_change`. Anything a user may not
see answers 404, never 403, so that a refusal does not tell them it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from knox.models import AuthToken
from rest_framework.test import APIClient

from cases.choices import CommunicationStatus
from cases.models import (
    AffectedResource,
    Communication,
    Incident,
    Objective,
    Participant,
    Task,
    TimelineEntry,
)

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Call:
    """One request: `path` is under /api/v1/incidents/{ref}/ unless it starts with a slash."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    ok: int = 200

    def url(self, ids: dict[str, Any]) -> str:
        if self.path.startswith("/"):
            return self.path
        return "/api/v1/incidents/{ref}/".format(**ids) + self.path.format(**ids)

    def send(self, client: APIClient, ids: dict[str, Any]) -> Any:
        return getattr(client, self.method.lower())(self.url(ids), self.body)


READS = [
    Call("incident", "GET", ""),
    Call("participants", "GET", "participants/"),
    Call("participant", "GET", "participants/{participant}/"),
    Call("resources", "GET", "resources/"),
    Call("resource", "GET", "resources/{resource}/"),
    Call("objectives", "GET", "objectives/"),
    Call("objective", "GET", "objectives/{objective}/"),
    Call("tasks", "GET", "tasks/"),
    Call("task", "GET", "tasks/{task}/"),
    Call("communications", "GET", "communications/"),
    Call("communication", "GET", "communications/{draft}/"),
    Call("timeline", "GET", "timeline/"),
]
WRITES = [
    Call("incident-update", "PATCH", "", {"summary": "Keys rotated"}),
    Call("transition", "POST", "transition/", {"status": "triaged"}),
    Call("acknowledge", "POST", "acknowledge/"),
    Call("participant-add", "POST", "participants/", {"user": "noah", "role": "observer"}, 201),
    Call("participant-update", "PATCH", "participants/{participant}/", {"role": "scribe"}),
    Call("participant-remove", "DELETE", "participants/{participant}/", ok=204),
    Call(
        "resource-add",
        "POST",
        "resources/",
        {
            "account_id": "123456789012",
            "identifier": "i-0def",
            "resource_type": "AWS::EC2::Instance",
        },
        201,
    ),
    Call("resource-update", "PATCH", "resources/{resource}/", {"region": "eu-west-1"}),
    Call("resource-remove", "DELETE", "resources/{resource}/", ok=204),
    Call("objective-add", "POST", "objectives/", {"kind": "notify", "description": "Legal"}, 201),
    Call("objective-update", "PATCH", "objectives/{objective}/", {"status": "in_progress"}),
    Call("objective-remove", "DELETE", "objectives/{objective}/", ok=204),
    Call("task-add", "POST", "tasks/", {"title": "Rotate the access keys"}, 201),
    Call("task-update", "PATCH", "tasks/{task}/", {"done": True}),
    Call("task-remove", "DELETE", "tasks/{task}/", ok=204),
    Call(
        "communication-draft",
        "POST",
        "communications/",
        {"audience": "legal", "subject": "Heads up", "body": "Possible exposure."},
        201,
    ),
    Call("communication-update", "PATCH", "communications/{draft}/", {"subject": "Update"}),
    Call("communication-discard", "DELETE", "communications/{draft}/", ok=204),
    Call("communication-approve", "POST", "communications/{draft}/approve/"),
    Call("communication-send", "POST", "communications/{approved}/send/"),
    Call("note", "POST", "timeline/", {"kind": "note", "summary": "Checked CloudTrail"}, 201),
]
ENDPOINTS = READS + WRITES
LEAD_ONLY = {"communication-approve"}


def by_name(calls: list[Call]) -> Any:
    return pytest.mark.parametrize("call", calls, ids=[c.name for c in calls])


def furnish(incident: Incident) -> dict[str, Any]:
    """Give the incident one of every part; the ids its endpoints' paths need."""
    nina, _ = User.objects.get_or_create(username="nina")
    User.objects.get_or_create(username="noah")
    objective = Objective.objects.create(incident=incident, kind="contain", description="Isolate")
    draft, approved = (
        Communication.objects.create(
            incident=incident, audience="leadership", subject="Status", body="...", status=status
        )
        for status in (CommunicationStatus.DRAFT, CommunicationStatus.APPROVED)
    )
    return {
        "ref": incident.reference,
        "participant": Participant.objects.create(incident=incident, user=nina).pk,
        "resource": AffectedResource.objects.create(
            incident=incident,
            account_id="123456789012",
            identifier="i-0abc",
            resource_type="AWS::EC2::Instance",
        ).pk,
        "objective": objective.pk,
        "task": Task.objects.create(incident=incident, objective=objective, title="Snapshot").pk,
        "draft": draft.pk,
        "approved": approved.pk,
    }


def cast(request: pytest.FixtureRequest, name: str, incident: Incident | None = None) -> User:
    """A conftest user by fixture name; `participant` and `observer` are the no-role
    `outsider` taking part in `incident` as a responder or as an observer."""
    if name in ("participant", "observer"):
        user = request.getfixturevalue("outsider")
        role = "observer" if name == "observer" else "responder"
        Participant.objects.create(incident=incident, user=user, role=role)
        return user
    return request.getfixturevalue(name)


# --- Authentication -------------------------------------------------------------------------


@by_name(
    [
        *ENDPOINTS,
        Call("incident-list", "GET", "/api/v1/incidents/"),
        Call("incident-open", "POST", "/api/v1/incidents/", {"title": "x"}),
        Call("communication-templates", "GET", "/api/v1/communication-templates/"),
    ]
)
def test_anonymous_is_refused_everywhere(api, incident, call):
    ids = furnish(incident)
    entries = TimelineEntry.objects.count()

    answer = call.send(api(None), ids)

    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"
    assert TimelineEntry.objects.count() == entries


def test_knox_token_authenticates_api_requests(responder, incident):
    _, key = AuthToken.objects.create(user=responder)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")

    listed = client.get("/api/v1/incidents/")
    noted = client.post(
        f"/api/v1/incidents/{incident.reference}/timeline/",
        {"kind": "note", "summary": "Token works"},
    )

    assert listed.status_code == 200
    assert [i["reference"] for i in listed.json()["results"]] == [incident.reference]
    assert noted.status_code == 201, noted.json()
    assert noted.json()["actor"] == {"kind": "user", "name": "rui"}


def test_unknown_token_is_refused(responder):
    AuthToken.objects.create(user=responder)

    answer = APIClient(HTTP_AUTHORIZATION="Token not-a-real-token").get("/api/v1/incidents/")

    assert answer.status_code == 401


def test_session_authenticates_api_reads(responder, incident):
    client = APIClient()
    client.force_login(responder)

    assert client.get(f"/api/v1/incidents/{incident.reference}/").status_code == 200


# --- Seeing -----------------------------------------------------------------------------------


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
def test_incident_list_and_count_show_only_visible_incidents(
    request, api, make_incident, restricted_incident, name, sees
):
    opened = make_incident(title="open")
    user = cast(request, name, restricted_incident)
    titles = {opened.reference: "open", restricted_incident.reference: "restricted"}

    body = api(user).get("/api/v1/incidents/").json()

    assert {titles[i["reference"]] for i in body["results"]} == sees
    assert body["count"] == len(sees)


@pytest.mark.parametrize("name", ["lead", "superuser", "responder", "participant", "observer"])
def test_restricted_incident_is_readable_by_participants_leads_and_superusers(
    request, api, restricted_incident, name
):
    ids = furnish(restricted_incident)
    client = api(cast(request, name, restricted_incident))

    statuses = {call.name: call.send(client, ids).status_code for call in READS}

    assert statuses == dict.fromkeys(statuses, 200)


@pytest.mark.parametrize(
    "name", ["responder", "other_responder", "leadership", "integration", "observer"]
)
def test_roles_read_every_unrestricted_incident(request, api, incident, name):
    ids = furnish(incident)
    client = api(cast(request, name, incident))

    statuses = {call.name: call.send(client, ids).status_code for call in READS}

    assert statuses == dict.fromkeys(statuses, 200)


def test_outsider_cannot_see_restricted_incident(api, outsider, restricted_incident):
    answer = api(outsider).get(f"/api/v1/incidents/{restricted_incident.reference}/")

    assert answer.status_code == 404


def test_outsider_sees_nothing_by_default(api, outsider, incident):
    client = api(outsider)

    assert client.get("/api/v1/incidents/").json()["count"] == 0
    assert client.get(f"/api/v1/incidents/{incident.reference}/").status_code == 404


@by_name(ENDPOINTS)
def test_hidden_incident_is_not_found_at_any_endpoint(
    request, api, incident, restricted_incident, call
):
    """404 for reads and changes alike, and the refusal changes nothing."""
    hidden = [
        (restricted_incident, "other_responder"),
        (restricted_incident, "leadership"),
        (restricted_incident, "integration"),
        (restricted_incident, "outsider"),
        (incident, "outsider"),
    ]
    ids = {incident.pk: furnish(incident), restricted_incident.pk: furnish(restricted_incident)}
    entries = TimelineEntry.objects.count()

    statuses = {
        f"{name} on {target.title}": call.send(
            api(request.getfixturevalue(name)), ids[target.pk]
        ).status_code
        for target, name in hidden
    }

    assert statuses == dict.fromkeys(statuses, 404)
    assert TimelineEntry.objects.count() == entries


@pytest.mark.parametrize(
    "part",
    [
        "participants/{participant}/",
        "resources/{resource}/",
        "objectives/{objective}/",
        "tasks/{task}/",
        "communications/{draft}/",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_part_of_hidden_incident_is_not_reached_through_a_visible_one(
    api, other_responder, incident, restricted_incident, part, method
):
    hidden = furnish(restricted_incident)
    entries = TimelineEntry.objects.count()

    answer = Call("cross", method, part, {}).send(
        api(other_responder), {**hidden, "ref": incident.reference}
    )

    assert answer.status_code == 404
    assert TimelineEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("name", "action", "communication"),
    [
        ("lead", "approve", "draft"),
        ("lead", "send", "approved"),
        ("other_responder", "send", "approved"),
    ],
)
def test_communication_is_approved_and_sent_only_through_its_own_incident(
    request, api, incident, restricted_incident, name, action, communication
):
    """Even a lead, who sees both incidents, reaches a message only under its own one."""
    user = request.getfixturevalue(name)
    hidden = furnish(restricted_incident)
    url = f"/api/v1/incidents/{incident.reference}/communications/{hidden[communication]}/"

    answer = api(user).post(url + f"{action}/")

    assert answer.status_code == 404
    assert Communication.objects.get(pk=hidden[communication]).status == communication


@pytest.mark.parametrize("how", ["filter", "create"])
def test_objective_of_hidden_incident_is_indistinguishable_from_a_missing_one(
    api, other_responder, incident, restricted_incident, how
):
    hidden = Objective.objects.create(incident=restricted_incident, kind="contain").pk
    missing = hidden + 1000
    client = api(other_responder)
    tasks = f"/api/v1/incidents/{incident.reference}/tasks/"

    def answer_for(pk: int) -> tuple[int, str]:
        if how == "filter":
            answer = client.get(tasks, {"objective": pk})
        else:
            answer = client.post(tasks, {"title": "Check logs", "objective": pk})
        return answer.status_code, answer.content.decode().replace(str(pk), "<pk>")

    assert answer_for(hidden) == answer_for(missing)


# --- Changing ---------------------------------------------------------------------------------

MAY_CHANGE = {"lead", "superuser", "responder", "integration", "participant"}


@by_name(WRITES)
@pytest.mark.parametrize(
    "name",
    ["lead", "superuser", "responder", "integration", "participant", "leadership", "observer"],
)
def test_who_may_change_a_visible_incident(request, api, incident, name, call):
    ids = furnish(incident)
    client = api(cast(request, name, incident))
    entries = TimelineEntry.objects.count()
    allowed = name in ({"lead", "superuser"} if call.name in LEAD_ONLY else MAY_CHANGE)

    answer = call.send(client, ids)

    if allowed:
        assert answer.status_code == call.ok, answer.content
        assert TimelineEntry.objects.count() == entries + 1
    else:
        assert answer.status_code == 403, answer.content
        assert TimelineEntry.objects.count() == entries


@pytest.mark.parametrize("name", ["responder", "participant"])
def test_participant_may_work_a_restricted_incident(request, api, restricted_incident, name):
    client = api(cast(request, name, restricted_incident))
    base = f"/api/v1/incidents/{restricted_incident.reference}/"

    assert client.patch(base, {"severity": "sev2"}).status_code == 200
    assert client.post(base + "tasks/", {"title": "Pull badge logs"}).status_code == 201


def test_leadership_participant_sees_restricted_incident_but_cannot_change_it(
    api, leadership, restricted_incident
):
    Participant.objects.create(incident=restricted_incident, user=leadership, role="liaison")
    client = api(leadership)
    base = f"/api/v1/incidents/{restricted_incident.reference}/"

    assert client.get(base).status_code == 200
    assert client.patch(base, {"severity": "sev2"}).status_code == 403
    assert client.post(base + "timeline/", {"kind": "note", "summary": "x"}).status_code == 403


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("superuser", 201),
        ("lead", 201),
        ("responder", 201),
        ("integration", 201),
        ("leadership", 403),
        ("outsider", 403),
    ],
)
def test_who_opens_incidents(request, api, name, expected):
    answer = api(request.getfixturevalue(name)).post("/api/v1/incidents/", {"title": "New"})

    assert answer.status_code == expected
    assert Incident.objects.filter(title="New").exists() == (expected == 201)


@pytest.mark.parametrize("name", ["responder", "integration"])
def test_only_leads_approve_communications(request, api, incident, name):
    ids = furnish(incident)

    answer = api(request.getfixturevalue(name)).post(
        f"/api/v1/incidents/{incident.reference}/communications/{ids['draft']}/approve/"
    )

    assert answer.status_code == 403
    assert answer.json()["detail"] == "Only a lead can approve a communication."
    assert Communication.objects.get(pk=ids["draft"]).status == CommunicationStatus.DRAFT


@pytest.mark.parametrize(
    ("name", "expected"),
    [("lead", 200), ("superuser", 200), ("responder", 400), ("participant", 400)],
)
def test_only_a_lead_lifts_a_restriction(request, api, restricted_incident, name, expected):
    client = api(cast(request, name, restricted_incident))

    answer = client.patch(
        f"/api/v1/incidents/{restricted_incident.reference}/", {"restricted": False}
    )

    assert answer.status_code == expected
    restricted_incident.refresh_from_db()
    assert restricted_incident.restricted == (expected != 200)
    if expected == 400:
        assert answer.json() == {"restricted": ["Only a lead can lift a restriction."]}


def test_responder_may_restrict_an_incident(api, responder, incident):
    answer = api(responder).patch(f"/api/v1/incidents/{incident.reference}/", {"restricted": True})

    assert answer.status_code == 200
    incident.refresh_from_db()
    assert incident.restricted


# --- Admin ------------------------------------------------------------------------------------

CASE_MODELS = [
    "incident",
    "participant",
    "affectedresource",
    "objective",
    "task",
    "communication",
    "timelineentry",
]


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("superuser", {"open", "restricted"}),
        ("lead", {"open", "restricted"}),
        ("leadership", {"open"}),
        ("responder", {"open", "restricted"}),
        ("other_responder", {"open"}),
    ],
)
def test_admin_lists_only_visible_incidents_and_their_timelines(
    request, client, make_incident, restricted_incident, name, sees
):
    make_incident(title="open")
    user = request.getfixturevalue(name)
    user.is_staff = True
    user.save()
    client.force_login(user)

    incidents = client.get("/admin/cases/incident/")
    entries = client.get("/admin/cases/timelineentry/")

    assert incidents.status_code == entries.status_code == 200
    titles = {"Insider access to payroll": "restricted", "open": "open"}
    assert {titles[i.title] for i in incidents.context["cl"].result_list} == sees
    assert {titles[e.incident.title] for e in entries.context["cl"].result_list} == sees


def test_admin_restricted_incident_is_not_found_for_leadership(
    client, leadership, restricted_incident
):
    client.force_login(leadership)

    answer = client.get(f"/admin/cases/incident/{restricted_incident.pk}/change/")

    assert answer.status_code == 302
    assert answer.url == "/admin/"


def test_admin_is_closed_to_staff_without_a_role(client, outsider, incident):
    client.force_login(outsider)

    assert client.get("/admin/cases/incident/").status_code == 403


@pytest.mark.parametrize("model", CASE_MODELS)
@pytest.mark.parametrize("name", ["superuser", "lead", "leadership"])
def test_nobody_adds_case_models_in_admin(request, client, name, model):
    client.force_login(request.getfixturevalue(name))

    assert client.get(f"/admin/cases/{model}/add/").status_code == 403


@pytest.mark.parametrize("name", ["superuser", "lead"])
def test_admin_refuses_to_change_or_delete_an_incident(request, client, incident, name):
    client.force_login(request.getfixturevalue(name))
    url = f"/admin/cases/incident/{incident.pk}/"

    changed = client.post(url + "change/", {"title": "Renamed", "severity": "sev1"})
    deleted = client.post(url + "delete/", {"post": "yes"})

    assert (changed.status_code, deleted.status_code) == (403, 403)
    incident.refresh_from_db()
    assert incident.title != "Renamed"


def test_timeline_admin_is_read_only_for_superusers(client, superuser, incident):
    client.force_login(superuser)
    entry = TimelineEntry.objects.get(incident=incident)
    url = f"/admin/cases/timelineentry/{entry.pk}/"

    viewed = client.get(url + "change/")
    changed = client.post(url + "change/", {"summary": "Rewritten"})
    deleted = client.post(url + "delete/", {"post": "yes"})

    assert viewed.status_code == 200
    assert viewed.context["has_change_permission"] is False
    assert (changed.status_code, deleted.status_code) == (403, 403)
    entry.refresh_from_db()
    assert entry.summary != "Rewritten"
