"""The evidence page: items and their integrity, an upload form that streams into the
store, and buttons that only show (and only work) for those who may press them."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import LimitedStream
from django.db import connection
from django.http import UnreadablePostError
from django.test import Client, RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evidence import services
from evidence.choices import CustodyAction, Integrity
from evidence.models import EvidenceItem
from evidence.tests.test_api import add_item, corrupt, download
from evidence.views import evidence_upload

pytestmark = pytest.mark.django_db

BUTTONS = ("Upload", "Download", "Verify", "Hold")
MiB = 1024 * 1024


@pytest.fixture
def page_for(client):
    def signed_in(user):
        client.force_login(user)
        return client

    return signed_in


def page_url(incident) -> str:
    return reverse("incident-evidence", args=[incident.reference])


def upload_url(incident) -> str:
    return reverse("incident-evidence-upload", args=[incident.reference])


def item_url(name: str, item) -> str:
    return reverse(name, args=[item.incident.reference, item.pk])


def stored_files() -> list[Path]:
    root = Path(settings.EVIDENCE_LOCAL_DIR)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def a_file(data: bytes, name: str = "capture.pcap") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/vnd.tcpdump.pcap")


def test_the_page_shows_each_item_with_its_hash_and_retention(page_for, responder, incident):
    item = add_item(incident, responder)

    answer = page_for(responder).get(page_url(incident))

    assert answer.status_code == 200
    assert item.sha256 in answer.text
    assert "disk.img" in answer.text
    assert f"until {item.retain_until:%Y-%m-%d}" in answer.text
    assert "Chain of custody (1 event)" in answer.text


def test_a_failed_integrity_check_stands_out(page_for, responder, incident):
    item = add_item(incident, responder)
    corrupt(item)
    services.verify(item)

    answer = page_for(responder).get(page_url(incident))

    assert 'role="alert" id="integrity-failures"' in answer.text
    assert "1 item failed its integrity check" in answer.text
    assert "⚠ Hash mismatch" in answer.text


def test_an_upload_through_the_form_lands_in_the_store_with_its_hash(page_for, responder, incident):
    data = os.urandom(3 * 1024 * 1024 + 5)  # more than one chunk of the upload handler

    answer = page_for(responder).post(
        upload_url(incident),
        {"file": a_file(data), "kind": "log_export", "description": "from the bastion"},
    )

    assert answer.status_code == 302, answer.content
    item = EvidenceItem.objects.get()
    assert answer.url.endswith(f"#item-{item.pk}")
    assert (item.kind, item.name, item.size) == ("log_export", "capture.pcap", len(data))
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert (Path(settings.EVIDENCE_LOCAL_DIR) / item.key).read_bytes() == data
    assert stored_files() == [Path(settings.EVIDENCE_LOCAL_DIR) / item.key]
    event = item.custody.get()
    assert (event.action, event.actor_name, event.sha256) == ("uploaded", "rui", item.sha256)


def test_an_upload_without_a_csrf_token_is_refused_and_leaves_nothing(responder, incident):
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    # With the cookie set, the check reads the token from the body, so the file is parsed
    # (and streamed into the store) before the request is refused: it must not stay.
    client.get(page_url(incident))
    assert "csrftoken" in client.cookies

    answer = client.post(upload_url(incident), {"file": a_file(b"sneaky"), "kind": "file"})

    assert answer.status_code == 403
    assert not EvidenceItem.objects.exists()
    assert stored_files() == []


class ClientGoneAway(io.BytesIO):
    """A request body whose sender disconnects after `cut_at` bytes."""

    def __init__(self, data: bytes, cut_at: int) -> None:
        super().__init__(data)
        self.cut_at = cut_at

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.cut_at:
            raise OSError("connection reset by peer")
        return super().read(size if size is not None and size >= 0 else self.cut_at)


def test_an_upload_cut_off_midway_leaves_nothing_in_the_store(responder, incident):
    body = encode_multipart(BOUNDARY, {"kind": "file", "file": a_file(os.urandom(3 * MiB))})
    request = RequestFactory().generic(
        "POST", upload_url(incident), body, content_type=MULTIPART_CONTENT
    )
    request.META["wsgi.input"] = ClientGoneAway(body, cut_at=2 * MiB)
    request._stream = LimitedStream(request.META["wsgi.input"], len(body))
    request.user = responder
    request._dont_enforce_csrf_checks = True

    with pytest.raises(UnreadablePostError):
        evidence_upload(request, incident.reference)

    assert not EvidenceItem.objects.exists()
    assert stored_files() == []


def test_a_refused_form_leaves_nothing_in_the_store(page_for, responder, incident):
    answer = page_for(responder).post(
        upload_url(incident), {"file": a_file(b"bytes"), "kind": "not-a-kind"}
    )

    assert answer.status_code == 400
    assert "not-a-kind is not one of the available choices" in answer.text
    assert stored_files() == []


def test_leadership_sees_no_buttons_and_every_post_is_refused(page_for, lead, leadership, incident):
    item = add_item(incident, lead)
    client = page_for(leadership)

    page = client.get(page_url(incident))
    refused = [
        client.post(upload_url(incident), {"file": a_file(b"x"), "kind": "file"}),
        client.post(item_url("evidence-item-download", item)),
        client.post(item_url("evidence-item-verify", item)),
        client.post(item_url("evidence-item-legal-hold", item), {"on": "1", "reason": "m"}),
    ]

    assert page.status_code == 200
    assert item.sha256 in page.text
    assert not [button for button in BUTTONS if f">{button}</button>" in page.text]
    assert [answer.status_code for answer in refused] == [403] * 4
    assert stored_files() == [Path(settings.EVIDENCE_LOCAL_DIR) / item.key]
    assert list(item.custody.values_list("action", flat=True)) == ["uploaded"]


def test_a_responder_sees_every_button_but_the_hold(page_for, responder, incident):
    add_item(incident, responder)

    page = page_for(responder).get(page_url(incident))

    assert [button for button in BUTTONS if f">{button}</button>" in page.text] == [
        "Upload",
        "Download",
        "Verify",
    ]


def test_a_hidden_incident_has_no_evidence_page(
    page_for, lead, other_responder, restricted_incident
):
    add_item(restricted_incident, lead)
    client = page_for(other_responder)

    assert client.get(page_url(restricted_incident)).status_code == 404
    answer = client.post(upload_url(restricted_incident), {"file": a_file(b"x"), "kind": "file"})
    assert answer.status_code == 404
    assert len(stored_files()) == 1


def test_integrations_use_the_api_not_the_page(page_for, integration, incident):
    client = page_for(integration)

    assert client.get(page_url(incident)).status_code == 403
    answer = client.post(upload_url(incident), {"file": a_file(b"x"), "kind": "file"})
    assert answer.status_code == 403
    assert stored_files() == []


def test_the_page_asks_to_sign_in(client, incident):
    answer = client.post(upload_url(incident), {"file": a_file(b"x"), "kind": "file"})

    assert answer.status_code == 302
    assert answer.url.startswith(reverse("login"))
    assert stored_files() == []


def test_the_download_button_issues_a_link_and_follows_it(page_for, responder, incident):
    item = add_item(incident, responder)
    client = page_for(responder)

    answer = client.post(item_url("evidence-item-download", item))

    assert answer.status_code == 302
    assert answer.url.startswith("/api/v1/evidence-downloads/")
    fetched, body = download(client, answer.url)
    assert (fetched.status_code, body) == (200, item.data)
    assert list(item.custody.values_list("action", flat=True)) == [
        "uploaded",
        "download_link_issued",
        "downloaded",
    ]


def test_the_verify_button_records_the_check(page_for, responder, incident):
    item = add_item(incident, responder)

    answer = page_for(responder).post(item_url("evidence-item-verify", item), follow=True)

    assert "disk.img: intact." in answer.text
    item.refresh_from_db()
    assert item.integrity == Integrity.INTACT
    assert item.custody.filter(action=CustodyAction.VERIFIED).exists()


def test_a_lead_sets_and_lifts_a_legal_hold(page_for, lead, incident):
    item = add_item(incident, lead)
    client = page_for(lead)

    client.post(item_url("evidence-item-legal-hold", item), {"on": "1", "reason": "matter 7"})
    item.refresh_from_db()
    assert item.legal_hold
    client.post(item_url("evidence-item-legal-hold", item), {"on": "0"})

    item.refresh_from_db()
    assert not item.legal_hold
    assert list(item.custody.values_list("action", flat=True)) == [
        "uploaded",
        "legal_hold_set",
        "legal_hold_lifted",
    ]


def test_a_hold_without_a_reason_is_refused(page_for, lead, incident):
    item = add_item(incident, lead)

    answer = page_for(lead).post(
        item_url("evidence-item-legal-hold", item), {"on": "1"}, follow=True
    )

    assert "Say what the legal hold is for." in answer.text
    item.refresh_from_db()
    assert not item.legal_hold


def test_a_responder_cannot_set_a_legal_hold(page_for, responder, incident):
    item = add_item(incident, responder)

    answer = page_for(responder).post(
        item_url("evidence-item-legal-hold", item), {"on": "1", "reason": "m"}
    )

    assert answer.status_code == 403


def test_page_queries_do_not_grow_with_the_items(
    page_for, responder, incident, django_assert_max_num_queries
):
    client = page_for(responder)
    add_item(incident, responder)
    client.get(page_url(incident))
    with CaptureQueriesContext(connection) as captured:
        client.get(page_url(incident))
    for _ in range(5):
        services.verify(add_item(incident, responder))

    with django_assert_max_num_queries(len(captured)):
        assert client.get(page_url(incident)).status_code == 200
