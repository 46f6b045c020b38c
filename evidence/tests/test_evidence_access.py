"""Who may do what with evidence, endpoint by endpoint and role by role, and in the admin.

Reading follows the incident's visibility: a hidden incident answers 404 whatever is
asked. Adding and verifying follow `Incident.may_change`; taking evidence out (download
links, transfers) too, but never for integrations; retention, legal holds and disposal are
for leads. Leadership reads and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from cases.models import Participant
from evidence.api.permissions import KEEP, READ, TAKE_OUT, WORK
from evidence.api.views import EvidenceItemViewSet
from evidence.choices import Integrity
from evidence.models import CustodyEvent, EvidenceItem
from evidence.tests.test_api import add_item, download

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    rule: str
    ok: int = 200
    body: Any = None

    def send(self, client, reference: str, item: int):
        url = self.path.format(ref=reference, item=item)
        if self.name == "upload":
            return client.post(url, b"captured", content_type="application/octet-stream")
        return getattr(client, self.method.lower())(url, self.body)


ITEM = "/api/v1/incidents/{ref}/evidence/{item}/"
CALLS = [
    Call("list", "GET", "/api/v1/incidents/{ref}/evidence/", READ),
    Call("retrieve", "GET", ITEM, READ),
    Call("custody", "GET", ITEM + "custody/", READ),
    Call("manifest", "GET", "/api/v1/incidents/{ref}/evidence-manifest/?format=csv", READ),
    Call("upload", "POST", "/api/v1/incidents/{ref}/evidence/upload/?name=x.bin", WORK, 201),
    Call("verify", "POST", ITEM + "verify/", WORK),
    Call("download-link", "POST", ITEM + "download-link/", TAKE_OUT, 201),
    Call("transfer", "POST", ITEM + "transfer/", TAKE_OUT, 201, {"recipient": "Police"}),
    Call("legal-hold", "POST", ITEM + "legal-hold/", KEEP, 200, {"on": True, "reason": "m-7"}),
    Call("retention", "POST", ITEM + "retention/", KEEP, 200, {"retention_class": "long"}),
    # Allowed, then refused by the item's retention: 409 shows the rule let the lead through.
    Call("dispose", "POST", ITEM + "dispose/", KEEP, 409, {"reason": "tidy"}),
]

# Who asks, about which incident, and what they may do there.
CAST = {
    "lead": ("lead", "incident", {READ, WORK, TAKE_OUT, KEEP}),
    "responder-on-restricted": ("responder", "restricted_incident", {READ, WORK, TAKE_OUT}),
    "responder-not-on-restricted": ("other_responder", "restricted_incident", None),
    "leadership": ("leadership", "incident", {READ}),
    "integration": ("integration", "incident", {READ, WORK}),
    "outsider": ("outsider", "incident", None),
    "anonymous": (None, "incident", None),
}


def expected(call: Call, who: str) -> int:
    user, _, allowed = CAST[who]
    if user is None:
        return 401
    if allowed is None:
        return 404  # the incident is hidden from them
    return call.ok if call.rule in allowed else 403


@pytest.mark.parametrize("who", list(CAST))
@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
def test_access(request, api, lead, call, who):
    user_fixture, incident_fixture, _ = CAST[who]
    incident = request.getfixturevalue(incident_fixture)
    user = request.getfixturevalue(user_fixture) if user_fixture else None
    item = add_item(incident, lead)
    events_before = CustodyEvent.objects.count()

    answer = call.send(api(user), incident.reference, item.pk)

    assert answer.status_code == expected(call, who), answer.content
    if answer.status_code in (401, 403, 404):
        assert CustodyEvent.objects.count() == events_before
        assert EvidenceItem.objects.count() == 1


def test_every_action_of_the_viewset_has_a_rule():
    actions = {"list", "retrieve"} | {
        extra.__name__ for extra in EvidenceItemViewSet.get_extra_actions()
    }

    assert set(EvidenceItemViewSet.access) == actions


@pytest.mark.parametrize("who", ["lead", "responder", "leadership", "integration", "outsider"])
def test_anyone_signed_in_reads_the_signing_key(request, api, who):
    answer = api(request.getfixturevalue(who)).get("/api/v1/evidence-signing-key/")

    assert answer.status_code == 200
    assert answer.content.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_anonymous_gets_no_signing_key(api):
    assert api(None).get("/api/v1/evidence-signing-key/").status_code == 401


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("other_responder", 404),
        ("leadership", 404),
        ("integration", 404),
        ("outsider", 404),
    ],
)
def test_only_the_holder_redeems_a_link(request, api, lead, incident, who, status):
    item = add_item(incident, lead)
    url = api(lead).post(
        f"/api/v1/incidents/{incident.reference}/evidence/{item.pk}/download-link/"
    )
    url = url.json()["url"]

    answer, _ = download(api(request.getfixturevalue(who)), url)

    assert answer.status_code == status
    assert download(api(lead), url)[0].status_code == 200


def test_anonymous_cannot_redeem_a_link(api, lead, incident):
    item = add_item(incident, lead)
    issued = api(lead).post(
        f"/api/v1/incidents/{incident.reference}/evidence/{item.pk}/download-link/"
    )

    assert api(None).get(issued.json()["url"]).status_code == 401


def test_taken_off_a_restricted_incident_a_link_no_longer_works(
    api, lead, responder, restricted_incident
):
    item = add_item(restricted_incident, lead)
    client = api(responder)
    url = client.post(
        f"/api/v1/incidents/{restricted_incident.reference}/evidence/{item.pk}/download-link/"
    ).json()["url"]
    Participant.objects.filter(incident=restricted_incident, user=responder).delete()

    answer, _ = download(client, url)

    assert answer.status_code == 404
    assert not item.custody.filter(action="downloaded").exists()


# --- The admin ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["lead", "leadership", "superuser"])
def test_leads_and_leadership_read_evidence_in_the_admin(request, client, lead, incident, who):
    item = add_item(incident, lead)
    client.force_login(request.getfixturevalue(who))

    listed = client.get("/admin/evidence/evidenceitem/")
    shown = client.get(f"/admin/evidence/evidenceitem/{item.pk}/change/")

    assert listed.status_code == 200
    assert item.sha256 in listed.text
    assert shown.status_code == 200
    assert "Save" not in shown.text
    assert client.get("/admin/evidence/custodyevent/").status_code == 200


@pytest.mark.parametrize("who", ["responder", "outsider"])
def test_others_do_not_read_evidence_in_the_admin(request, client, who):
    client.force_login(request.getfixturevalue(who))

    assert client.get("/admin/evidence/evidenceitem/").status_code == 403
    assert client.get("/admin/evidence/custodyevent/").status_code == 403


@pytest.mark.parametrize("who", ["lead", "superuser"])
def test_nobody_changes_or_deletes_evidence_in_the_admin(request, client, lead, incident, who):
    item = add_item(incident, lead)
    stored_hash, event = item.sha256, item.custody.get()
    client.force_login(request.getfixturevalue(who))

    changed = client.post(
        f"/admin/evidence/evidenceitem/{item.pk}/change/", {"sha256": "0" * 64, "name": "x"}
    )
    deleted = client.post(f"/admin/evidence/evidenceitem/{item.pk}/delete/", {"post": "yes"})
    event_deleted = client.post(f"/admin/evidence/custodyevent/{event.pk}/delete/", {"post": "yes"})
    added = client.get("/admin/evidence/evidenceitem/add/")

    assert {changed.status_code, deleted.status_code, event_deleted.status_code} == {403}
    assert added.status_code == 403
    item.refresh_from_db()
    assert (item.name, item.sha256) == ("disk.img", stored_hash)
    assert CustodyEvent.objects.filter(pk=event.pk).exists()


def test_the_admin_flags_and_filters_a_failed_item(client, lead, incident):
    add_item(incident, lead, name="fine.img")
    broken = add_item(incident, lead, name="broken.img")
    EvidenceItem.objects.filter(pk=broken.pk).update(integrity=Integrity.MISMATCH)
    client.force_login(lead)

    listed = client.get("/admin/evidence/evidenceitem/?integrity__exact=mismatch")

    assert listed.status_code == 200
    assert "broken.img" in listed.text and "fine.img" not in listed.text
    assert "⚠ Hash mismatch" in listed.text


def test_the_admin_hides_evidence_of_restricted_incidents(
    client, lead, leadership, restricted_incident
):
    add_item(restricted_incident, lead, name="payroll.csv")
    client.force_login(leadership)

    listed = client.get("/admin/evidence/evidenceitem/")

    assert listed.status_code == 200
    assert "payroll.csv" not in listed.text
