"""Uploading evidence through the API: the body is the file."""

from __future__ import annotations

import hashlib
import os

import pytest

from evidence.models import EvidenceItem

pytestmark = pytest.mark.django_db


def upload(client, incident, data: bytes, **query):
    query = {"name": "capture.pcap", **query}
    return client.post(
        f"/api/v1/incidents/{incident.reference}/evidence/upload/?"
        + "&".join(f"{k}={v}" for k, v in query.items()),
        data=data,
        content_type="application/octet-stream",
    )


def test_it_stores_the_body_and_answers_its_hash(api, responder, incident):
    data = os.urandom(3 * 1024 * 1024 + 17)
    answer = upload(api(responder), incident, data, kind="log_export")
    assert answer.status_code == 201, answer.content
    assert answer.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert answer.json()["size"] == len(data)
    assert EvidenceItem.objects.get().kind == "log_export"


def test_a_body_that_does_not_match_the_announced_hash_is_refused_whole(
    api, responder, incident, settings
):
    answer = upload(api(responder), incident, b"tampered", sha256="0" * 64)
    assert answer.status_code == 400
    assert "sha256" in answer.json()
    assert not EvidenceItem.objects.exists()
    left_in_store = [path for path in settings.EVIDENCE_LOCAL_DIR.rglob("*") if path.is_file()]
    assert left_in_store == []


def test_a_body_that_matches_the_announced_hash_is_kept(api, responder, incident):
    data = b"the capture, as announced"
    announced = hashlib.sha256(data).hexdigest().upper()  # case is not a mismatch
    answer = upload(api(responder), incident, data, sha256=announced)
    assert answer.status_code == 201, answer.content


def test_leadership_cannot_add_evidence(api, leadership, incident):
    assert upload(api(leadership), incident, b"x").status_code == 403


def test_an_outsider_does_not_see_the_incident(api, outsider, restricted_incident):
    assert upload(api(outsider), restricted_incident, b"x").status_code == 404


def test_a_missing_name_is_a_field_error(api, responder, incident):
    answer = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/evidence/upload/",
        data=b"x",
        content_type="application/octet-stream",
    )
    assert answer.status_code == 400 and "name" in answer.json()
