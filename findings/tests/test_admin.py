import pytest

from findings.models import TriageRule

pytestmark = pytest.mark.django_db


def test_leadership_reads_rules_but_not_the_quarantine(client, leadership):
    client.force_login(leadership)

    assert client.get("/admin/findings/triagerule/").status_code == 200
    assert client.get("/admin/findings/quarantinedevent/").status_code == 403


def test_a_lead_changes_a_rule_in_the_admin(client, lead):
    client.force_login(lead)
    rule = TriageRule.objects.get(name="Cryptomining on EC2")

    page = client.get(f"/admin/findings/triagerule/{rule.pk}/change/")

    assert page.status_code == 200
    assert "Save" in page.text


def test_a_responder_cannot_change_a_rule(client, responder):
    client.force_login(responder)
    rule = TriageRule.objects.get(name="Cryptomining on EC2")

    answer = client.post(f"/admin/findings/triagerule/{rule.pk}/delete/", {"post": "yes"})

    assert answer.status_code == 403
    assert TriageRule.objects.filter(pk=rule.pk).exists()
