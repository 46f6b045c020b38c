import pytest
from django.urls import reverse

from cases.choices import EntryKind
from cases.models import TimelineEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def page_for(client):
    def signed_in(user):
        client.force_login(user)
        return client

    return signed_in


def test_pages_ask_to_sign_in(client, incident):
    answer = client.get(reverse("incident-detail", args=[incident.reference]))

    assert answer.status_code == 302
    assert answer.url.startswith(reverse("login"))


def test_list_shows_only_visible_incidents(
    page_for, other_responder, incident, restricted_incident
):
    answer = page_for(other_responder).get(reverse("incident-list"))

    assert incident.reference in answer.text
    assert restricted_incident.reference not in answer.text


def test_a_hidden_incident_is_not_found(page_for, other_responder, restricted_incident):
    answer = page_for(other_responder).get(
        reverse("incident-detail", args=[restricted_incident.reference])
    )

    assert answer.status_code == 404


def test_detail_shows_the_timeline(page_for, responder, incident):
    answer = page_for(responder).get(reverse("incident-detail", args=[incident.reference]))

    assert answer.status_code == 200
    assert f"Opened {incident.reference}" in answer.text


def test_a_note_from_the_page_reaches_the_timeline(page_for, responder, incident):
    page_for(responder).post(
        reverse("incident-add-entry", args=[incident.reference]),
        {"kind": "note", "summary": "Found the key in a public repo"},
    )

    entry = TimelineEntry.objects.filter(incident=incident).last()
    assert (entry.kind, entry.actor_name) == (EntryKind.NOTE, "rui")


def test_a_refused_transition_shows_the_reason(page_for, responder, incident):
    answer = page_for(responder).post(
        reverse("incident-transition", args=[incident.reference]),
        {"status": "recovered"},
        follow=True,
    )

    assert "cannot go from detected to recovered" in answer.text
    incident.refresh_from_db()
    assert incident.status == "detected"


def test_leadership_reads_but_cannot_change(page_for, leadership, incident):
    client = page_for(leadership)

    assert client.get(reverse("incident-detail", args=[incident.reference])).status_code == 200
    refused = client.post(reverse("incident-acknowledge", args=[incident.reference]))
    assert refused.status_code == 403


def test_integrations_use_the_api_not_the_pages(page_for, integration):
    assert page_for(integration).get(reverse("incident-list")).status_code == 403


def test_opening_an_incident_from_the_page(page_for, responder):
    answer = page_for(responder).post(
        reverse("incident-create"),
        {
            "title": "Public snapshot",
            "severity": "sev2",
            "category": "data_exposure",
            "tlp": "amber",
        },
    )

    assert answer.status_code == 302
    assert "/incidents/IR-" in answer.url


def test_outsider_cannot_open_incidents(page_for, outsider):
    assert page_for(outsider).get(reverse("incident-create")).status_code == 403


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(42, "42 s"), (600, "10 min"), (3600, "1 h"), (3900, "1 h 5 min"), (90000, "1 d 1 h")],
)
def test_durations_read_as_a_responder_says_them(seconds, said):
    from datetime import timedelta

    from cases.templatetags.incident_format import duration

    assert duration(timedelta(seconds=seconds)) == said
