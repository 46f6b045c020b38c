"""The evidence API: items, custody, download links, keeping and disposal, manifests."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cases.choices import EntryKind
from cases.models import TimelineEntry
from evidence import services
from evidence.choices import CustodyAction, EvidenceKind, Integrity
from evidence.models import EvidenceItem
from irportal.actors import Actor

pytestmark = pytest.mark.django_db


def add_item(incident, user, data: bytes | None = None, name: str = "disk.img", **details):
    """An item stored through the service, as `user`, with its bytes kept on it for tests."""
    data = os.urandom(4096) if data is None else data
    placement = services.placement_for(incident, name)
    item = services.upload(Actor.for_user(user), incident, [data], placement, **details)
    item.data = data
    return item


def evidence_url(incident, item=None, action: str = "") -> str:
    url = f"/api/v1/incidents/{incident.reference}/evidence/"
    if item is not None:
        url += f"{item.pk}/"
    return url + (f"{action}/" if action else "")


def custody_of(client, incident, item) -> list[str]:
    answer = client.get(evidence_url(incident, item, "custody"), {"page_size": 200})
    assert answer.status_code == 200, answer.content
    return [event["action"] for event in answer.json()["results"]]


def corrupt(item) -> None:
    path = Path(settings.EVIDENCE_LOCAL_DIR) / item.key
    path.chmod(0o600)
    path.write_bytes(b"not what was stored")


def download(client, url: str):
    answer = client.get(url)
    body = b"".join(answer.streaming_content) if answer.streaming else answer.content
    return answer, body


@pytest.fixture
def item(incident, responder):
    return add_item(incident, responder)


# --- Reading ------------------------------------------------------------------------------


def test_it_lists_the_incidents_items_with_their_hashes(api, responder, incident, item):
    add_item(incident, responder, name="other.log")

    answer = api(responder).get(evidence_url(incident))

    assert answer.status_code == 200
    rows = answer.json()["results"]
    assert [row["name"] for row in rows] == ["disk.img", "other.log"]
    assert rows[0]["sha256"] == hashlib.sha256(item.data).hexdigest()
    assert rows[0]["integrity"] == Integrity.UNVERIFIED


def test_it_filters_by_kind_integrity_and_legal_hold(api, lead, responder, incident, item):
    logs = add_item(incident, responder, name="trail.jsonl", kind=EvidenceKind.LOG_EXPORT)
    held = add_item(incident, responder, name="held.img")
    services.set_legal_hold(Actor.for_user(lead), held, True, "matter 7")
    corrupt(item)
    services.verify(item)
    client = api(responder)

    def names(**query):
        return [row["name"] for row in client.get(evidence_url(incident), query).json()["results"]]

    assert names(kind="log_export") == [logs.name]
    assert names(integrity="mismatch") == [item.name]
    assert names(legal_hold="true") == [held.name]
    assert names(legal_hold="false", integrity="unverified") == [logs.name]


def test_an_item_of_another_incident_is_not_found_here(api, responder, make_incident, item):
    elsewhere = make_incident(title="Another one")

    answer = api(responder).get(evidence_url(elsewhere, item))

    assert answer.status_code == 404


def test_reading_an_item_is_a_viewed_custody_event(api, leadership, incident, item):
    answer = api(leadership).get(evidence_url(incident, item))

    assert answer.status_code == 200
    assert answer.json()["sha256"] == item.sha256
    event = item.custody.get(action=CustodyAction.VIEWED)
    assert (event.actor_name, event.sha256) == ("lou", item.sha256)
    assert TimelineEntry.objects.filter(
        incident=incident, kind=EntryKind.EVIDENCE_CUSTODY, data__custody="viewed"
    ).exists()


def test_listing_does_not_count_as_viewing_each_item(api, responder, incident, item):
    api(responder).get(evidence_url(incident))

    assert not item.custody.filter(action=CustodyAction.VIEWED).exists()


def test_list_queries_do_not_grow_with_the_items(
    api, responder, incident, django_assert_max_num_queries
):
    client = api(responder)

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(evidence_url(incident)).status_code == 200
        return len(captured)

    add_item(incident, responder)
    queries_for_list()  # the first asks for the roles, which are then cached
    one = queries_for_list()
    for _ in range(6):
        add_item(incident, responder)
    with django_assert_max_num_queries(one):
        assert len(client.get(evidence_url(incident)).json()["results"]) == 7


def test_custody_queries_do_not_grow_with_the_events(
    api, lead, incident, item, django_assert_max_num_queries
):
    client = api(lead)
    url = evidence_url(incident, item, "custody")
    client.get(url)  # the first asks for the roles, which are then cached
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    for _ in range(5):
        services.verify(item, Actor.for_user(lead))

    with django_assert_max_num_queries(len(captured)):
        assert len(client.get(url).json()["results"]) == 6


# --- Download links -----------------------------------------------------------------------


def test_a_download_link_streams_the_bytes_once(api, responder, incident, item):
    client = api(responder)

    issued = client.post(evidence_url(incident, item, "download-link"))
    assert issued.status_code == 201, issued.content
    url = issued.json()["url"]
    assert "/api/v1/evidence-downloads/" in url

    answer, body = download(client, url)
    assert answer.status_code == 200
    assert body == item.data
    assert answer["X-Evidence-SHA256"] == item.sha256
    assert 'attachment; filename="disk.img"' in answer["Content-Disposition"]

    again, _ = download(client, url)
    assert again.status_code == 410
    assert "used already" in again.json()["detail"]


def test_a_download_link_expires(api, responder, incident, item):
    client = api(responder)
    issued = client.post(evidence_url(incident, item, "download-link")).json()
    lifetime = timedelta(seconds=settings.EVIDENCE_DOWNLOAD_LINK_SECONDS)

    with time_machine.travel(timezone.now() + lifetime + timedelta(seconds=1), tick=False):
        answer, _ = download(client, issued["url"])

    assert answer.status_code == 410
    assert "expired" in answer.json()["detail"]
    assert not item.custody.filter(action=CustodyAction.DOWNLOADED).exists()


def test_a_download_link_works_until_it_expires(api, responder, incident, item):
    client = api(responder)
    issued = client.post(evidence_url(incident, item, "download-link")).json()
    lifetime = timedelta(seconds=settings.EVIDENCE_DOWNLOAD_LINK_SECONDS)

    with time_machine.travel(timezone.now() + lifetime - timedelta(seconds=2), tick=False):
        answer, body = download(client, issued["url"])

    assert answer.status_code == 200
    assert body == item.data


def test_a_link_is_only_for_the_person_it_was_issued_to(api, lead, responder, incident, item):
    issued = api(responder).post(evidence_url(incident, item, "download-link")).json()

    refused, _ = download(api(lead), issued["url"])
    answer, body = download(api(responder), issued["url"])

    assert refused.status_code == 404
    assert (answer.status_code, body) == (200, item.data)


def test_an_unknown_link_is_not_found(api, responder):
    answer = api(responder).get("/api/v1/evidence-downloads/no-such-token/")

    assert answer.status_code == 404


def test_a_disposed_item_has_no_download(api, lead, incident, item):
    with time_machine.travel(item.retain_until + timedelta(days=1), tick=False):
        services.dispose(Actor.for_user(lead), item, "retention over")
        answer = api(lead).post(evidence_url(incident, item, "download-link"))

    assert answer.status_code == 409


# --- Keeping and disposal -----------------------------------------------------------------


def test_every_custody_event_kind_is_recorded_through_the_api(api, lead, responder, incident, item):
    person, keeper = api(responder), api(lead)

    assert person.get(evidence_url(incident, item)).status_code == 200
    url = person.post(evidence_url(incident, item, "download-link")).json()["url"]
    assert download(person, url)[0].status_code == 200
    assert person.post(evidence_url(incident, item, "verify")).json()["integrity"] == "intact"
    later = (item.retain_until + timedelta(days=30)).isoformat()
    retained = keeper.post(evidence_url(incident, item, "retention"), {"retain_until": later})
    assert retained.status_code == 200, retained.content
    held = keeper.post(evidence_url(incident, item, "legal-hold"), {"on": True, "reason": "m-7"})
    assert held.json()["legal_hold"] is True
    lifted = keeper.post(evidence_url(incident, item, "legal-hold"), {"on": False})
    assert lifted.json()["legal_hold"] is False
    transfer = {"recipient": "National Crime Agency", "reason": "case 1234"}
    moved = person.post(evidence_url(incident, item, "transfer"), transfer)
    assert moved.status_code == 201, moved.content
    assert moved.json()["to_location"] == "National Crime Agency"
    item.refresh_from_db()
    with time_machine.travel(item.retain_until + timedelta(seconds=1), tick=False):
        disposed = keeper.post(evidence_url(incident, item, "dispose"), {"reason": "expired"})
    assert disposed.status_code == 200, disposed.content
    assert disposed.json()["disposed_at"]

    assert custody_of(keeper, incident, item) == [
        "uploaded",
        "viewed",
        "download_link_issued",
        "downloaded",
        "verified",
        "retention_changed",
        "legal_hold_set",
        "legal_hold_lifted",
        "transferred_out",
        "disposed",
    ]
    assert not (Path(settings.EVIDENCE_LOCAL_DIR) / item.key).exists()
    recorded = TimelineEntry.objects.filter(incident=incident, data__evidence=item.pk)
    assert recorded.count() == 10
    assert recorded.filter(kind=EntryKind.EVIDENCE_DISPOSED).count() == 1


def test_a_custody_event_names_who_where_and_the_hash(api, responder, incident, item):
    client = api(responder)
    client.post(evidence_url(incident, item, "transfer"), {"recipient": "Forensics Ltd"})

    event = client.get(evidence_url(incident, item, "custody")).json()["results"][-1]

    assert event["action"] == "transferred_out"
    assert event["actor"] == {"kind": "user", "name": "rui"}
    assert event["from_location"] == f"local:{item.key}"
    assert event["sha256"] == item.sha256


def test_disposing_before_retain_until_is_refused(api, lead, incident, item):
    answer = api(lead).post(evidence_url(incident, item, "dispose"), {"reason": "tidy"})

    assert answer.status_code == 409
    assert "retained until" in answer.json()["detail"]
    assert (Path(settings.EVIDENCE_LOCAL_DIR) / item.key).exists()
    assert not item.custody.filter(action=CustodyAction.DISPOSED).exists()


def test_disposing_under_legal_hold_is_refused_even_after_retention(api, lead, incident, item):
    client = api(lead)
    client.post(evidence_url(incident, item, "legal-hold"), {"on": True, "reason": "m-7"})

    with time_machine.travel(item.retain_until + timedelta(days=1), tick=False):
        answer = client.post(evidence_url(incident, item, "dispose"), {"reason": "expired"})

    assert answer.status_code == 409
    assert "legal hold" in answer.json()["detail"]
    assert (Path(settings.EVIDENCE_LOCAL_DIR) / item.key).exists()


def test_disposal_needs_a_reason(api, lead, incident, item):
    answer = api(lead).post(evidence_url(incident, item, "dispose"), {})

    assert answer.status_code == 400
    assert "reason" in answer.json()


def test_retention_is_only_extended(api, lead, incident, item):
    earlier = (item.retain_until - timedelta(days=1)).isoformat()

    answer = api(lead).post(evidence_url(incident, item, "retention"), {"retain_until": earlier})

    assert answer.status_code == 409
    assert "only be extended" in answer.json()["detail"]


def test_retention_by_class_counts_from_acquisition(api, lead, incident, item):
    answer = api(lead).post(evidence_url(incident, item, "retention"), {"retention_class": "long"})

    assert answer.status_code == 200, answer.content
    item.refresh_from_db()
    assert item.retention_class == "long"
    assert item.retain_until == item.acquired_at + timedelta(days=2555)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "retention_class"),
        ({"retention_class": "forever"}, "retention_class"),
        ({"retention_class": "long", "retain_until": "2040-01-01T00:00:00Z"}, "retain_until"),
        ({"retain_until": "next week"}, "retain_until"),
    ],
)
def test_a_wrong_retention_request_is_a_field_error(api, lead, incident, item, body, field):
    answer = api(lead).post(evidence_url(incident, item, "retention"), body)

    assert answer.status_code == 400
    assert field in answer.json()


def test_setting_a_legal_hold_needs_a_reason(api, lead, incident, item):
    answer = api(lead).post(evidence_url(incident, item, "legal-hold"), {"on": True})

    assert answer.status_code == 400
    assert "reason" in answer.json()


def test_a_transfer_names_its_recipient(api, responder, incident, item):
    answer = api(responder).post(evidence_url(incident, item, "transfer"), {"reason": "asked"})

    assert answer.status_code == 400
    assert "recipient" in answer.json()


def test_verifying_flags_a_changed_item(api, responder, incident, item):
    corrupt(item)

    answer = api(responder).post(evidence_url(incident, item, "verify"))

    assert answer.status_code == 200
    assert answer.json()["integrity"] == "mismatch"
    assert item.custody.filter(action=CustodyAction.INTEGRITY_FAILED).exists()


# --- Manifests ----------------------------------------------------------------------------


def public_key(client):
    answer = client.get("/api/v1/evidence-signing-key/")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/x-pem-file"
    return serialization.load_pem_public_key(answer.content)


def signature_holds(key, document: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), document)
    except InvalidSignature:
        return False
    return True


@pytest.mark.parametrize(
    ("wanted", "media_type"), [("json", "application/json"), ("csv", "text/csv")]
)
def test_a_manifest_verifies_with_the_published_key_and_not_once_a_line_changes(
    api, leadership, incident, item, wanted, media_type
):
    client = api(leadership)

    answer = client.get(
        f"/api/v1/incidents/{incident.reference}/evidence-manifest/?format={wanted}"
    )

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith(media_type)
    assert f"{incident.reference}-evidence-manifest.{wanted}" in answer["Content-Disposition"]
    document, signature = answer.content, answer["X-Evidence-Signature"]
    assert item.sha256.encode() in document
    key = public_key(client)
    assert signature_holds(key, document, signature)
    changed = document.replace(b"disk.img", b"disk.iso", 1)
    assert changed != document
    assert not signature_holds(key, changed, signature)


def test_a_manifest_is_json_unless_asked_otherwise(api, responder, incident, item):
    answer = api(responder).get(f"/api/v1/incidents/{incident.reference}/evidence-manifest/")

    assert answer.status_code == 200
    assert answer.json()["items"][0]["sha256"] == item.sha256


def test_an_unknown_manifest_format_is_a_field_error(api, responder, incident):
    answer = api(responder).get(
        f"/api/v1/incidents/{incident.reference}/evidence-manifest/?format=xml"
    )

    assert answer.status_code == 400
    assert "format" in answer.json()


def test_manifest_queries_do_not_grow_with_the_items(
    api, responder, incident, item, django_assert_max_num_queries
):
    client = api(responder)
    url = f"/api/v1/incidents/{incident.reference}/evidence-manifest/"
    client.get(url)  # the first asks for the roles, which are then cached
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    for _ in range(4):
        add_item(incident, responder)

    with django_assert_max_num_queries(len(captured)):
        assert len(client.get(url).json()["items"]) == 5


def test_items_stay_on_their_incident(responder, incident, item):
    assert EvidenceItem.objects.get().incident == incident
