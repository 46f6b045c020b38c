import itertools
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import Incident, TimelineEntry
from cases.models.timeline import GENESIS_HASH
from irportal.actors import Actor
from irportal.tests.concurrency import at_once

pytestmark = pytest.mark.django_db


def note(incident, actor, text="checked CloudTrail"):
    return TimelineEntry.objects.append(incident, actor, EntryKind.NOTE, text)


@pytest.fixture
def actor(lead):
    return Actor.for_user(lead)


def test_entries_link_into_one_chain(incident, actor):
    for n in range(3):
        note(incident, actor, f"note {n}")

    entries = list(TimelineEntry.objects.filter(incident=incident))
    assert [e.sequence for e in entries] == [1, 2, 3, 4]
    assert entries[0].previous_hash == GENESIS_HASH
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(entries))
    assert TimelineEntry.objects.verify_chain(incident) is None


def test_database_refuses_to_update_an_entry(incident):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        TimelineEntry.objects.filter(incident=incident).update(summary="nothing happened")


def test_database_refuses_to_delete_an_entry(incident):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        TimelineEntry.objects.filter(incident=incident).delete()


def tamper(sql, params):
    """Change a row the way an attacker with database access would: around the trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A superuser can switch user triggers off for the session.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        else:
            cursor.execute("DROP TRIGGER cases_timeline_no_update")
            cursor.execute("DROP TRIGGER cases_timeline_no_delete")
            cursor.execute(sql, params)


def test_verify_timeline_names_an_altered_entry(incident, actor):
    note(incident, actor)
    note(incident, actor, "isolated the instance")
    tamper(
        f"UPDATE {TimelineEntry._meta.db_table} SET summary = %s "
        "WHERE incident_id = %s AND sequence = 2",
        ["nothing to see", incident.pk],
    )

    with pytest.raises(
        CommandError, match=rf"{incident.reference} entry 2: content does not match"
    ):
        call_command("verify_timeline", incident.reference)


def test_verify_timeline_names_a_removed_entry(incident, actor):
    note(incident, actor)
    note(incident, actor)
    tamper(
        f"DELETE FROM {TimelineEntry._meta.db_table} WHERE incident_id = %s AND sequence = 2",
        [incident.pk],
    )

    with pytest.raises(CommandError, match=rf"{incident.reference} entry 3: expected entry 2"):
        call_command("verify_timeline")


def test_verify_timeline_passes_an_intact_chain(incident, actor, capsys):
    note(incident, actor)

    call_command("verify_timeline", incident.reference)

    assert "1 timeline(s) verified" in capsys.readouterr().out


def test_verify_timeline_refuses_an_unknown_reference():
    with pytest.raises(CommandError, match="no such incident: IR-1999-0001"):
        call_command("verify_timeline", "IR-1999-0001")


def test_a_note_can_be_dated_in_the_past(api, responder, incident):
    earlier = timezone.now() - timedelta(hours=2)
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/timeline/",
        {
            "kind": "decision",
            "summary": "Keep the host up for memory capture",
            "occurred_at": earlier.isoformat(),
        },
    )

    assert answer.status_code == 201, answer.json()
    entry = TimelineEntry.objects.get(incident=incident, sequence=answer.json()["sequence"])
    assert entry.occurred_at == earlier
    assert entry.sequence == 2  # the order of recording, not of occurrence


def test_people_cannot_write_system_kinds(api, responder, incident):
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/timeline/",
        {"kind": "incident.status_changed", "summary": "closed it"},
    )

    assert answer.status_code == 400
    assert "kind" in answer.json()


def test_timeline_reads_newest_first_on_request(api, responder, incident, actor):
    note(incident, actor)
    client = api(responder)

    oldest_first = client.get(f"/api/v1/incidents/{incident.reference}/timeline/").json()
    newest_first = client.get(
        f"/api/v1/incidents/{incident.reference}/timeline/?ordering=-sequence"
    ).json()

    assert [e["sequence"] for e in oldest_first["results"]] == [1, 2]
    assert [e["sequence"] for e in newest_first["results"]] == [2, 1]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_writers_keep_one_chain(lead):
    from cases import services

    incident = services.open_incident(Actor.for_user(lead), title="Busy incident")
    actor = Actor.for_user(lead)
    writers, per_writer = 6, 15

    def write(_writer: int) -> None:
        for n in range(per_writer):
            note(Incident.objects.get(pk=incident.pk), actor, f"note {n}")

    assert at_once(writers, write) == []
    sequences = list(
        TimelineEntry.objects.filter(incident=incident).values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, writers * per_writer + 2))
    assert TimelineEntry.objects.verify_chain(incident) is None


def test_several_entries_appended_at_once_continue_the_chain(incident, actor):
    from cases.models.timeline import NewEntry

    appended = TimelineEntry.objects.append_many(
        incident, [NewEntry(actor, EntryKind.NOTE, f"note {n}") for n in range(3)]
    )

    assert [e.sequence for e in appended] == [2, 3, 4]
    assert TimelineEntry.objects.verify_chain(incident) is None
