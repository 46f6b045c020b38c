"""Working an incident's parts from its page: objectives, tasks, participants, resources and
communications, each change recorded on the timeline as the API records it."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from cases import services
from cases.models import (
    AffectedResource,
    Communication,
    CommunicationTemplate,
    Objective,
    Participant,
    Task,
    TimelineEntry,
)
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
def refused(post_as, responder):
    """Post a form the page must send back: 400, nothing written; the form's field errors."""

    def post(action, incident, form, data):
        before = entries(incident)
        answer = post_as(responder, action, incident, data=data)
        assert answer.status_code == 400
        assert entries(incident) == before
        return answer.context[form].errors

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


def recorded(incident):
    """The latest timeline entry: its kind, who wrote it, and the part it is about."""
    last = entries(incident)[-1]
    return last.kind, last.actor_name, last.data.get("id")


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
    assert recorded(incident) == ("objective.added", "rui", objective.pk)


def test_marking_an_objective_met_sets_met_at_and_records_it(
    post_as, make_part, responder, incident
):
    objective = make_part(incident, Objective, kind="contain")

    post_as(responder, "incident-objective-status", incident, objective.pk, data={"status": "met"})

    objective.refresh_from_db()
    assert objective.status == "met"
    assert objective.met_at is not None
    assert recorded(incident) == ("objective.updated", "rui", objective.pk)
    assert entries(incident)[-1].data["changes"] == {"status": ["open", "met"]}


def test_an_objective_of_kind_other_needs_a_description(refused, incident):
    errors = refused("incident-objective-add", incident, "objective_form", {"kind": "other"})

    assert errors == {"description": ["Describe an objective of kind 'other'."]}
    assert not Objective.objects.exists()


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
    assert recorded(incident) == ("task.added", "rui", task.pk)


def test_a_task_cannot_point_at_another_incidents_objective(
    refused, make_part, incident, other_incident
):
    elsewhere = make_part(other_incident, Objective, kind="contain")

    errors = refused(
        "incident-task-add", incident, "task_form", {"title": "Isolate", "objective": elsewhere.pk}
    )

    assert list(errors) == ["objective"]
    assert not Task.objects.exists()


def test_a_task_needs_a_title(refused, incident):
    errors = refused("incident-task-add", incident, "task_form", {"title": ""})

    assert errors == {"title": ["This field is required."]}
    assert not Task.objects.exists()


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


def test_responder_adds_a_participant_with_a_role(post_as, responder, other_responder, incident):
    answer = post_as(
        responder, "incident-participant-add", incident, data={"user": "rita", "role": "scribe"}
    )

    assert answer.status_code == 302
    participant = Participant.objects.get(incident=incident)
    assert (participant.user, participant.role) == (other_responder, "scribe")
    assert recorded(incident) == ("participant.added", "rui", participant.pk)


def test_someone_takes_part_only_once(refused, restricted_incident):
    again = {"user": "rui", "role": "scribe"}

    errors = refused("incident-participant-add", restricted_incident, "participant_form", again)

    assert errors == {"user": [f"rui already takes part in {restricted_incident.reference}."]}
    assert Participant.objects.filter(incident=restricted_incident).count() == 1


def test_an_inactive_user_cannot_take_part(refused, other_responder, incident):
    other_responder.is_active = False
    other_responder.save()

    errors = refused(
        "incident-participant-add", incident, "participant_form", {"user": "rita", "role": "scribe"}
    )

    assert list(errors) == ["user"]
    assert not Participant.objects.exists()


def test_responder_removes_a_participant(post_as, make_part, responder, other_responder, incident):
    participant = make_part(incident, Participant, user=other_responder, role="observer")

    answer = post_as(responder, "incident-participant-remove", incident, participant.pk)

    assert answer.status_code == 302
    assert not Participant.objects.filter(pk=participant.pk).exists()
    assert recorded(incident) == ("participant.removed", "rui", participant.pk)


def test_leaving_a_restricted_incident_goes_back_to_the_list(
    post_as, client, responder, restricted_incident
):
    own = Participant.objects.get(incident=restricted_incident, user=responder)

    answer = post_as(responder, "incident-participant-remove", restricted_incident, own.pk)

    # Its page would now be "not found" to them: they land on the list, told why.
    assert answer.status_code == 302
    assert answer.url == reverse("incident-list")
    shown = [str(m) for m in client.get(answer.url).context["messages"]]
    assert shown == [
        f"You left {restricted_incident.reference}; it is restricted, so it is no "
        "longer shown to you."
    ]
    assert recorded(restricted_incident) == ("participant.removed", "rui", own.pk)


def test_responder_adds_an_affected_resource(post_as, responder, incident):
    arn = "arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc"

    answer = post_as(
        responder,
        "incident-resource-add",
        incident,
        data={
            "account_id": "111122223333",
            "region": "eu-west-1",
            "identifier": arn,
            "resource_type": "AWS::EC2::Instance",
        },
    )

    assert answer.status_code == 302
    resource = AffectedResource.objects.get(incident=incident)
    assert (resource.account_id, resource.region, resource.identifier, resource.resource_type) == (
        "111122223333",
        "eu-west-1",
        arn,
        "AWS::EC2::Instance",
    )
    assert recorded(incident) == ("resource.added", "rui", resource.pk)


def test_an_account_id_is_twelve_digits(refused, incident):
    errors = refused(
        "incident-resource-add",
        incident,
        "resource_form",
        {"account_id": "1111", "identifier": "i-0abc", "resource_type": "AWS::EC2::Instance"},
    )

    assert errors == {"account_id": ["An AWS account id is 12 digits."]}
    assert not AffectedResource.objects.exists()


@pytest.fixture
def draft(make_part, incident):
    return make_part(
        incident, Communication, audience="legal", subject="Key leaked", body="Rotated."
    )


def test_responder_drafts_a_communication(post_as, responder, incident):
    answer = post_as(
        responder,
        "incident-communication-draft",
        incident,
        data={"audience": "legal", "channel": "chat", "subject": "Key leaked", "body": "Rotated."},
    )

    assert answer.status_code == 302
    drafted = Communication.objects.get(incident=incident)
    assert (drafted.audience, drafted.channel, drafted.subject, drafted.body) == (
        "legal",
        "chat",
        "Key leaked",
        "Rotated.",
    )
    assert (drafted.status, drafted.drafted_by, drafted.template) == ("draft", responder, None)
    assert recorded(incident) == ("communication.drafted", "rui", drafted.pk)


def test_a_template_fills_in_what_the_draft_leaves_empty(post_as, responder, incident):
    template = CommunicationTemplate.objects.create(
        name="Leadership update",
        audience="leadership",
        channel="status_page",
        subject="{{ incident.reference }} update",
        body="Status: {{ incident.status }}",
    )

    post_as(
        responder,
        "incident-communication-draft",
        incident,
        data={"template": template.pk, "body": "Contained at 10:40."},
    )

    drafted = Communication.objects.get(incident=incident)
    assert (drafted.audience, drafted.channel, drafted.subject, drafted.body) == (
        "leadership",
        "status_page",
        f"{incident.reference} update",
        "Contained at 10:40.",
    )
    assert drafted.template == template


def test_a_draft_without_a_template_needs_audience_subject_and_body(refused, incident):
    errors = refused("incident-communication-draft", incident, "communication_form", {})

    needed = ["This field is required unless a template provides it."]
    assert errors == {"audience": needed, "subject": needed, "body": needed}
    assert not Communication.objects.exists()


def test_an_inactive_template_cannot_be_used(refused, incident):
    template = CommunicationTemplate.objects.create(
        name="Old", audience="legal", subject="s", body="b", active=False
    )

    errors = refused(
        "incident-communication-draft", incident, "communication_form", {"template": template.pk}
    )

    assert "template" in errors
    assert not Communication.objects.exists()


def test_lead_approves_a_draft(post_as, lead, incident, draft):
    post_as(lead, "incident-communication-approve", incident, draft.pk)

    draft.refresh_from_db()
    assert (draft.status, draft.approved_by) == ("approved", lead)
    assert draft.approved_at is not None
    assert recorded(incident) == ("communication.approved", "lena", None)
    assert entries(incident)[-1].data["communication"] == draft.pk


def test_a_responder_cannot_approve(post_as, responder, incident, draft):
    before = entries(incident)

    answer = post_as(responder, "incident-communication-approve", incident, draft.pk)

    assert answer.status_code == 403
    draft.refresh_from_db()
    assert (draft.status, draft.approved_by) == ("draft", None)
    assert entries(incident) == before


def test_an_approved_communication_is_marked_sent(post_as, lead, responder, incident, draft):
    draft.approve(Actor.for_user(lead))

    post_as(responder, "incident-communication-send", incident, draft.pk)

    draft.refresh_from_db()
    assert (draft.status, draft.sent_by) == ("sent", responder)
    assert draft.sent_at is not None
    assert recorded(incident) == ("communication.sent", "rui", None)


def test_a_draft_cannot_be_marked_sent(client, responder, incident, draft):
    before = entries(incident)
    client.force_login(responder)

    answer = client.post(
        reverse("incident-communication-send", args=[incident.reference, draft.pk]), follow=True
    )

    assert "only an approved communication can be sent; this is draft" in answer.text
    draft.refresh_from_db()
    assert draft.status == "draft"
    assert entries(incident) == before


def test_approve_is_offered_to_leads_only(client, lead, responder, incident, draft):
    url = reverse("incident-detail", args=[incident.reference])

    client.force_login(responder)
    assert ">Approve</button>" not in client.get(url).text
    client.force_login(lead)
    assert ">Approve</button>" in client.get(url).text


# Each change the page offers: its URL name, the kind of part it acts on (None: it adds
# one), and a form that would be accepted.
ACTIONS = [
    ("incident-objective-add", None, {"kind": "contain"}),
    ("incident-objective-status", Objective, {"status": "met"}),
    ("incident-task-add", None, {"title": "Isolate i-0abc"}),
    ("incident-task-done", Task, {"done": "on"}),
    ("incident-participant-add", None, {"user": "lena", "role": "commander"}),
    ("incident-participant-remove", Participant, {}),
    (
        "incident-resource-add",
        None,
        {"account_id": "111122223333", "identifier": "i-0abc", "resource_type": "AWS::S3::Bucket"},
    ),
    ("incident-communication-draft", None, {"audience": "legal", "subject": "s", "body": "b"}),
    ("incident-communication-approve", Communication, {}),
    ("incident-communication-send", Communication, {}),
]

PART_FIELDS = {
    Objective: {"kind": "contain"},
    Task: {"title": "Rotate the key"},
    Participant: {"role": "scribe"},
    Communication: {"audience": "legal", "subject": "Key leaked", "body": "Rotated."},
}


def _args(make_part, incident, model):
    if model is None:
        return []
    fields = dict(PART_FIELDS[model])
    if model is Participant:
        fields["user"] = User.objects.create_user("pat", password="x")
    return [make_part(incident, model, **fields).pk]


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
    post_as, make_part, lead, incident, other_incident, action, model, data
):
    # As a lead, who sees both incidents and may approve: the URL alone must not reach.
    part = _args(make_part, other_incident, model)
    before = entries(other_incident)

    answer = post_as(lead, action, incident, *part, data=data)

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
