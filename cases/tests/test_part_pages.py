"""Working an incident's parts from its page: objectives, tasks, participants, resources and
communications, each change recorded on the timeline as the API records it."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from cases import services
from cases.models import Objective, Task, TimelineEntry
from irportal.actors import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def post_as(client):
    """Post a form to one of the incident's page actions, signed in as `user`."""

    def post(user, action, incident, *part, data=None):
        client.force_login(user)
        return client.post(reverse(action, args=[incident.reference, *part]), data or {})

    return post


@pytest.fixture
def make_part(lead):
    """Add a part to an incident through the service, as the lead."""

    def make(incident, model, **fields):
        return services.add(Actor.for_user(lead), model(incident=incident, **fields))

    return make


@pytest.fixture
def other_incident(make_incident):
    return make_incident(title="Leaked access key in a public gist")


def entries(incident):
    return list(TimelineEntry.objects.filter(incident=incident).order_by("sequence"))


def test_responder_adds_an_objective(post_as, responder, incident):
    answer = post_as(
        responder,
        "incident-objective-add",
        incident,
        data={
            "kind": "contain",
            "description": "No traffic from i-0abc",
            "owner": "rui",
            "due_at": "2030-01-02T10:30",
        },
    )

    assert answer.status_code == 302
    objective = Objective.objects.get(incident=incident)
    assert (objective.kind, objective.description, objective.owner) == (
        "contain",
        "No traffic from i-0abc",
        responder,
    )
    assert objective.due_at == datetime(2030, 1, 2, 10, 30, tzinfo=UTC)
    last = entries(incident)[-1]
    assert (last.kind, last.actor_name, last.data["id"]) == ("objective.added", "rui", objective.pk)


def test_marking_an_objective_met_sets_met_at_and_records_it(
    post_as, make_part, responder, incident
):
    objective = make_part(incident, Objective, kind="contain")

    post_as(responder, "incident-objective-status", incident, objective.pk, data={"status": "met"})

    objective.refresh_from_db()
    assert objective.status == "met"
    assert objective.met_at is not None
    last = entries(incident)[-1]
    assert (last.kind, last.actor_name) == ("objective.updated", "rui")
    assert last.data["changes"] == {"status": ["open", "met"]}


def test_an_objective_of_kind_other_needs_a_description(post_as, responder, incident):
    before = entries(incident)

    answer = post_as(responder, "incident-objective-add", incident, data={"kind": "other"})

    assert answer.status_code == 400
    assert answer.context["objective_form"].errors == {
        "description": ["Describe an objective of kind 'other'."]
    }
    assert "Describe an objective of kind" in answer.text
    assert not Objective.objects.exists()
    assert entries(incident) == before


def test_an_unknown_objective_status_is_refused(post_as, make_part, responder, incident):
    objective = make_part(incident, Objective, kind="contain")
    before = entries(incident)

    answer = post_as(
        responder, "incident-objective-status", incident, objective.pk, data={"status": "won"}
    )

    assert answer.status_code == 400
    assert "status" in answer.context["objective_status_forms"][objective.pk].errors
    objective.refresh_from_db()
    assert objective.status == "open"
    assert entries(incident) == before


def test_responder_adds_a_task_toward_an_objective(post_as, make_part, responder, incident):
    objective = make_part(incident, Objective, kind="contain")

    answer = post_as(
        responder,
        "incident-task-add",
        incident,
        data={"title": "Isolate i-0abc", "objective": objective.pk, "assignee": "rui"},
    )

    assert answer.status_code == 302
    task = Task.objects.get(incident=incident)
    assert (task.title, task.objective, task.assignee, task.done) == (
        "Isolate i-0abc",
        objective,
        responder,
        False,
    )
    last = entries(incident)[-1]
    assert (last.kind, last.actor_name, last.data["id"]) == ("task.added", "rui", task.pk)


def test_a_task_cannot_point_at_another_incidents_objective(
    post_as, make_part, responder, incident, other_incident
):
    elsewhere = make_part(other_incident, Objective, kind="contain")
    before = entries(incident)

    answer = post_as(
        responder,
        "incident-task-add",
        incident,
        data={"title": "Isolate i-0abc", "objective": elsewhere.pk},
    )

    assert answer.status_code == 400
    assert "objective" in answer.context["task_form"].errors
    assert not Task.objects.filter(incident=incident).exists()
    assert entries(incident) == before


def test_a_task_needs_a_title(post_as, responder, incident):
    before = entries(incident)

    answer = post_as(responder, "incident-task-add", incident, data={"title": ""})

    assert answer.status_code == 400
    assert answer.context["task_form"].errors == {"title": ["This field is required."]}
    assert not Task.objects.exists()
    assert entries(incident) == before


def test_ticking_a_task_done_and_undoing_it(post_as, make_part, responder, incident):
    task = make_part(incident, Task, title="Rotate the key")

    post_as(responder, "incident-task-done", incident, task.pk, data={"done": "on"})
    task.refresh_from_db()
    assert task.done and task.done_at is not None

    post_as(responder, "incident-task-done", incident, task.pk)
    task.refresh_from_db()
    assert not task.done and task.done_at is None

    changes = [e.data["changes"] for e in entries(incident) if e.kind == "task.updated"]
    assert changes == [{"done": [False, True]}, {"done": [True, False]}]
    assert {e.actor_name for e in entries(incident) if e.kind == "task.updated"} == {"rui"}


# Each change the page offers: its URL name, the kind of part it acts on (None: it adds
# one), and a form that would be accepted.
ACTIONS = [
    ("incident-objective-add", None, {"kind": "contain"}),
    ("incident-objective-status", Objective, {"status": "met"}),
    ("incident-task-add", None, {"title": "Isolate i-0abc"}),
    ("incident-task-done", Task, {"done": "on"}),
]

PART_FIELDS = {
    Objective: {"kind": "contain"},
    Task: {"title": "Rotate the key"},
}


def _args(make_part, incident, model):
    return [make_part(incident, model, **PART_FIELDS[model]).pk] if model else []


@pytest.mark.parametrize(
    ("who", "where", "refusal"),
    [("leadership", "incident", 403), ("other_responder", "restricted_incident", 404)],
    ids=["leadership reads only", "outsider to a restricted incident"],
)
@pytest.mark.parametrize(("action", "model", "data"), ACTIONS)
def test_those_who_may_not_change_the_incident_are_refused(
    request, post_as, make_part, who, where, refusal, action, model, data
):
    incident = request.getfixturevalue(where)
    part = _args(make_part, incident, model)
    before = entries(incident)

    answer = post_as(request.getfixturevalue(who), action, incident, *part, data=data)

    assert answer.status_code == refusal
    assert entries(incident) == before


@pytest.mark.parametrize(("action", "model", "data"), [a for a in ACTIONS if a[1]])
def test_a_part_of_another_incident_is_not_found(
    post_as, make_part, responder, incident, other_incident, action, model, data
):
    part = _args(make_part, other_incident, model)
    before = entries(other_incident)

    answer = post_as(responder, action, incident, *part, data=data)

    assert answer.status_code == 404
    assert entries(other_incident) == before
    assert len(entries(incident)) == 1


def test_page_changes_need_a_post(client, responder, incident, make_part):
    task = make_part(incident, Task, title="Rotate the key")
    client.force_login(responder)

    answer = client.get(reverse("incident-task-done", args=[incident.reference, task.pk]))

    assert answer.status_code == 405


def test_the_page_offers_the_forms_only_to_those_who_may_change(
    client, responder, leadership, incident
):
    url = reverse("incident-detail", args=[incident.reference])

    client.force_login(responder)
    assert "Add task" in client.get(url).text
    client.force_login(leadership)
    assert "Add task" not in client.get(url).text
