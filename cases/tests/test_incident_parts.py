"""Participants, resources, objectives, tasks and communications, through the API."""

import pytest

from cases.choices import EntryKind
from cases.models import Communication, CommunicationTemplate, Objective, Task, TimelineEntry

pytestmark = pytest.mark.django_db


def path(incident, part, pk=None):
    base = f"/api/v1/incidents/{incident.reference}/{part}/"
    return f"{base}{pk}/" if pk else base


def last_entry(incident):
    return TimelineEntry.objects.filter(incident=incident).last()


def test_adding_a_participant_is_recorded(api, lead, responder, incident):
    answer = api(lead).post(path(incident, "participants"), {"user": "rui", "role": "scribe"})

    assert answer.status_code == 201, answer.json()
    entry = last_entry(incident)
    assert entry.kind == EntryKind.PARTICIPANT_ADDED
    assert entry.data["fields"]["role"] == "scribe"


def test_a_person_takes_part_once(api, lead, responder, incident):
    api(lead).post(path(incident, "participants"), {"user": "rui"})
    again = api(lead).post(path(incident, "participants"), {"user": "rui", "role": "observer"})

    assert again.status_code == 400
    assert "already takes part" in again.json()["user"][0]


def test_unknown_user_is_a_field_error(api, lead, incident):
    answer = api(lead).post(path(incident, "participants"), {"user": "nobody"})

    assert answer.status_code == 400
    assert "user" in answer.json()


def test_a_change_records_before_and_after(api, lead, incident):
    added = (
        api(lead)
        .post(
            path(incident, "resources"),
            {
                "account_id": "111122223333",
                "identifier": "i-0abc",
                "resource_type": "AWS::EC2::Instance",
            },
        )
        .json()
    )

    api(lead).patch(path(incident, "resources", added["id"]), {"region": "eu-west-1"})

    entry = last_entry(incident)
    assert entry.kind == EntryKind.RESOURCE_UPDATED
    assert entry.data["changes"] == {"region": ["", "eu-west-1"]}


def test_a_change_to_nothing_records_nothing(api, lead, incident):
    before = TimelineEntry.objects.count()

    api(lead).patch(f"/api/v1/incidents/{incident.reference}/", {"title": incident.title})

    assert TimelineEntry.objects.count() == before


def test_account_id_must_be_twelve_digits(api, lead, incident):
    answer = api(lead).post(
        path(incident, "resources"),
        {"account_id": "12345", "identifier": "i-0abc", "resource_type": "AWS::EC2::Instance"},
    )

    assert answer.status_code == 400
    assert answer.json()["account_id"] == ["An AWS account id is 12 digits."]


def test_tags_must_map_strings_to_strings(api, lead, incident):
    answer = api(lead).post(
        path(incident, "resources"),
        {
            "account_id": "111122223333",
            "identifier": "b",
            "resource_type": "AWS::S3::Bucket",
            "tags": ["x"],
        },
    )

    assert answer.status_code == 400
    assert "tags" in answer.json()


def test_meeting_an_objective_sets_when(api, lead, incident):
    objective = (
        api(lead)
        .post(path(incident, "objectives"), {"kind": "contain", "description": "isolate i-0abc"})
        .json()
    )

    met = api(lead).patch(path(incident, "objectives", objective["id"]), {"status": "met"}).json()

    assert met["met_at"] is not None
    assert last_entry(incident).data["changes"] == {"status": ["open", "met"]}


def test_other_objective_needs_a_description(api, lead, incident):
    answer = api(lead).post(path(incident, "objectives"), {"kind": "other"})

    assert answer.status_code == 400
    assert "description" in answer.json()


def test_a_task_cannot_hang_under_another_incidents_objective(api, lead, incident, make_incident):
    elsewhere = make_incident(title="other")
    foreign = Objective.objects.create(incident=elsewhere, kind="contain")

    answer = api(lead).post(path(incident, "tasks"), {"title": "snapshot", "objective": foreign.pk})

    assert answer.status_code == 400
    assert "does not exist" in answer.json()["objective"][0]


def test_completing_a_task_sets_when(api, lead, incident):
    task = (
        api(lead)
        .post(path(incident, "tasks"), {"title": "snapshot volumes", "assignee": "lena"})
        .json()
    )

    done = api(lead).patch(path(incident, "tasks", task["id"]), {"done": True}).json()

    assert done["done_at"] is not None
    assert Task.objects.get(pk=task["id"]).done


def test_removing_a_task_is_recorded(api, lead, incident):
    task = api(lead).post(path(incident, "tasks"), {"title": "page legal"}).json()

    answer = api(lead).delete(path(incident, "tasks", task["id"]))

    assert answer.status_code == 204
    entry = last_entry(incident)
    assert (entry.kind, entry.summary) == (EntryKind.TASK_REMOVED, "Task removed: page legal")


def test_a_part_is_not_reachable_through_another_incident(api, lead, incident, make_incident):
    elsewhere = make_incident(title="other")
    task = Task.objects.create(incident=elsewhere, title="hidden")

    assert api(lead).get(path(incident, "tasks", task.pk)).status_code == 404


class TestCommunications:
    def test_a_template_fills_the_draft(self, api, responder, incident):
        template = CommunicationTemplate.objects.get(name="Leadership: status update")

        answer = api(responder).post(path(incident, "communications"), {"template": template.pk})

        assert answer.status_code == 201, answer.json()
        draft = answer.json()
        assert draft["audience"] == "leadership"
        assert incident.reference in draft["subject"]
        assert f"Severity: {incident.get_severity_display()}" in draft["body"]
        assert draft["drafted_by"] == "rui"

    def test_without_template_the_message_is_required(self, api, responder, incident):
        answer = api(responder).post(path(incident, "communications"), {"channel": "email"})

        assert answer.status_code == 400
        assert set(answer.json()) == {"audience", "subject", "body"}

    def test_draft_approved_then_sent_names_who_and_when(self, api, lead, responder, incident):
        draft = (
            api(responder)
            .post(
                path(incident, "communications"),
                {
                    "audience": "legal",
                    "subject": "Possible PII exposure",
                    "body": "Details follow.",
                },
            )
            .json()
        )

        approved = api(lead).post(path(incident, "communications", draft["id"]) + "approve/").json()
        sent = api(responder).post(path(incident, "communications", draft["id"]) + "send/").json()

        assert (approved["status"], approved["approved_by"]) == ("approved", "lena")
        assert (sent["status"], sent["sent_by"]) == ("sent", "rui")
        assert sent["approved_at"] <= sent["sent_at"]
        kinds = TimelineEntry.objects.filter(incident=incident).values_list("kind", flat=True)
        assert list(kinds)[-3:] == [
            EntryKind.COMMUNICATION_DRAFTED,
            EntryKind.COMMUNICATION_APPROVED,
            EntryKind.COMMUNICATION_SENT,
        ]

    def test_an_unapproved_draft_cannot_be_sent(self, api, responder, incident):
        draft = Communication.objects.create(
            incident=incident, audience="legal", subject="s", body="b"
        )

        answer = api(responder).post(path(incident, "communications", draft.pk) + "send/")

        assert answer.status_code == 409
        assert "only an approved communication can be sent" in answer.json()["detail"]

    def test_an_approved_message_cannot_be_edited(self, api, lead, incident):
        draft = Communication.objects.create(
            incident=incident, audience="legal", subject="s", body="b"
        )
        api(lead).post(path(incident, "communications", draft.pk) + "approve/")

        answer = api(lead).patch(path(incident, "communications", draft.pk), {"body": "changed"})

        assert answer.status_code == 409
        draft.refresh_from_db()
        assert draft.body == "b"


def test_every_change_kind_reaches_the_timeline(api, lead, responder, incident):
    """Drive each kind of change once through the API; each leaves its own entry kind."""
    client = api(lead)
    incident_path = f"/api/v1/incidents/{incident.reference}/"
    client.patch(incident_path, {"severity": "sev1"})
    client.post(incident_path + "acknowledge/")
    client.post(incident_path + "transition/", {"status": "triaged"})
    client.post(incident_path + "timeline/", {"kind": "note", "summary": "n"})
    client.post(incident_path + "timeline/", {"kind": "decision", "summary": "d"})
    parts = {
        "participants": ({"user": "rui"}, {"role": "scribe"}),
        "resources": (
            {
                "account_id": "111122223333",
                "identifier": "i-1",
                "resource_type": "AWS::EC2::Instance",
            },
            {"region": "us-east-1"},
        ),
        "objectives": ({"kind": "contain"}, {"status": "met"}),
        "tasks": ({"title": "t"}, {"done": True}),
        "communications": ({"audience": "legal", "subject": "s", "body": "b"}, {"body": "c"}),
    }
    for part, (new, change) in parts.items():
        created = client.post(path(incident, part), new).json()
        client.patch(path(incident, part, created["id"]), change)
        if part == "communications":
            client.post(path(incident, part, created["id"]) + "approve/")
            client.post(path(incident, part, created["id"]) + "send/")
            created = client.post(path(incident, part), new).json()
        client.delete(path(incident, part, created["id"]))

    recorded = set(TimelineEntry.objects.filter(incident=incident).values_list("kind", flat=True))
    # Written by the deadline task, finding intake, the response engine and evidence, each
    # tested where it lives.
    elsewhere = ("finding.", "playbook.", "step.", "action.", "evidence.")
    never_from_api = {EntryKind.ACKNOWLEDGEMENT_MISSED} | {
        kind for kind in EntryKind if kind.startswith(elsewhere)
    }
    assert recorded == set(EntryKind) - never_from_api
    assert TimelineEntry.objects.verify_chain(incident) is None
