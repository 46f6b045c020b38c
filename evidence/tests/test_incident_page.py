"""The incident's main page flags evidence that failed its integrity check, linking to
each item on the evidence page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evidence import services
from evidence.choices import Integrity
from evidence.models import EvidenceItem
from evidence.tests.test_api import add_item, corrupt

pytestmark = pytest.mark.django_db


def incident_page(client, user, incident) -> str:
    client.force_login(user)
    answer = client.get(reverse("incident-detail", args=[incident.reference]))
    assert answer.status_code == 200
    return answer.text


def test_the_incident_page_says_an_item_failed_its_integrity_check(client, responder, incident):
    changed, intact = add_item(incident, responder), add_item(incident, responder, name="b.log")
    corrupt(changed)
    services.verify(changed)
    services.verify(intact)

    page = incident_page(client, responder, incident)

    assert 'role="alert" id="evidence-integrity-failures"' in page
    assert "1 evidence item failed its integrity check" in page
    evidence_page = reverse("incident-evidence", args=[incident.reference])
    assert f'<a href="{evidence_page}#item-{changed.pk}">#{changed.pk} disk.img</a>' in page
    assert "(hash mismatch)" in page
    assert f"#{intact.pk} b.log" not in page


def test_an_item_that_could_not_be_read_is_flagged_on_both_pages(client, responder, incident):
    item = add_item(incident, responder)
    EvidenceItem.objects.filter(pk=item.pk).update(integrity=Integrity.UNREADABLE)

    page = incident_page(client, responder, incident)
    evidence = client.get(reverse("incident-evidence", args=[incident.reference])).text

    assert "1 evidence item failed its integrity check" in page
    assert "(could not be read)" in page
    assert "1 item failed its integrity check" in evidence
    assert "⚠ Could not be read" in evidence


def test_intact_evidence_raises_no_flag(client, responder, incident):
    services.verify(add_item(incident, responder))

    assert "evidence-integrity-failures" not in incident_page(client, responder, incident)
