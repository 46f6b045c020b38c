"""The admin: leads keep accounts and playbooks (a changed playbook is saved as its next
version); runs, steps and action runs are read-only, for the incidents the reader sees."""

from __future__ import annotations

import json

import pytest

from irportal.actors import Actor
from playbooks import services
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun, RunStep
from playbooks.tests.conftest import ACCOUNT_ID, REGION
from playbooks.tests.test_api import TAG_STEPS

pytestmark = pytest.mark.django_db

RECORDS = ["playbookrun", "runstep", "actionrun"]


def playbook_form(**fields: object) -> dict[str, object]:
    return {
        "slug": "tag-it",
        "name": "Tag it",
        "description": "",
        "definition": json.dumps({"steps": TAG_STEPS}),
        "enabled": "on",
        **fields,
    }


@pytest.fixture
def ran(make_incident, restricted_incident, lead):
    """A dry run, with its steps and action runs, on an open and on a restricted incident."""
    CloudAccount.objects.create(account_id=ACCOUNT_ID, name="Simulated", environment="demo")
    playbook = Playbook.objects.create(
        slug="tag-it", name="Tag it", definition={"steps": TAG_STEPS}
    )
    inputs = {"instance.id": "i-0abc", "account_id": ACCOUNT_ID, "region": REGION}
    for incident in (make_incident(title="open"), restricted_incident):
        services.start_run(Actor.for_user(lead), incident, playbook, dry_run=True, inputs=inputs)


# --- Accounts ---------------------------------------------------------------------------------


def test_a_lead_registers_an_account_in_the_admin(client, lead):
    client.force_login(lead)

    answer = client.post(
        "/admin/playbooks/cloudaccount/add/",
        {
            "account_id": "210987654321",
            "name": "Payments",
            "environment": "production",
            "regions": '["eu-west-1"]',
            "role_arn": "arn:aws:iam::210987654321:role/ir-portal-responder",
            "external_id": "payments-ir",
            "enabled": "on",
        },
    )

    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert CloudAccount.objects.get().external_id == "payments-ir"


@pytest.mark.parametrize("name", ["responder", "leadership"])
def test_other_roles_read_accounts_without_the_external_id(request, client, name):
    account = CloudAccount.objects.create(
        account_id=ACCOUNT_ID, name="Simulated", environment="demo", external_id="secret-ish"
    )
    client.force_login(request.getfixturevalue(name))

    listed = client.get("/admin/playbooks/cloudaccount/")
    viewed = client.get(f"/admin/playbooks/cloudaccount/{account.pk}/change/")
    added = client.get("/admin/playbooks/cloudaccount/add/")

    assert (listed.status_code, viewed.status_code, added.status_code) == (200, 200, 403)
    assert viewed.context["has_change_permission"] is False
    assert b"secret-ish" not in viewed.content
    assert "external_id" not in viewed.context["adminform"].form.fields


def test_staff_without_a_role_is_kept_out(client, outsider):
    client.force_login(outsider)

    assert client.get("/admin/playbooks/cloudaccount/").status_code == 403
    assert client.get("/admin/playbooks/playbook/").status_code == 403


# --- Playbooks --------------------------------------------------------------------------------


def test_a_lead_writes_a_playbook_in_the_admin(client, lead):
    client.force_login(lead)

    answer = client.post("/admin/playbooks/playbook/add/", playbook_form())

    assert answer.status_code == 302
    playbook = Playbook.objects.get()
    assert (playbook.version, playbook.created_by) == (1, "lena")
    assert playbook.definition["steps"][0]["on_failure"] == "stop"


def test_a_bad_definition_is_shown_as_form_errors(client, lead):
    client.force_login(lead)
    steps = [{"id": "x", "action": "launch_missiles"}, {"id": "y", "action": "tag_resource"}]

    answer = client.post(
        "/admin/playbooks/playbook/add/", playbook_form(definition=json.dumps({"steps": steps}))
    )

    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors["definition"]
    assert errors[0].startswith("steps.0.action: no action named 'launch_missiles'")
    assert not Playbook.objects.exists()


def test_changing_a_playbook_in_the_admin_saves_the_next_version(client, lead):
    client.force_login(lead)
    client.post("/admin/playbooks/playbook/add/", playbook_form())
    first = Playbook.objects.get()

    answer = client.post(
        f"/admin/playbooks/playbook/{first.pk}/change/",
        playbook_form(definition=json.dumps({"steps": TAG_STEPS[:1]})),
    )

    assert answer.status_code == 302
    assert sorted(Playbook.objects.values_list("version", flat=True)) == [1, 2]
    first.refresh_from_db()
    assert len(first.steps) == 2
    assert len(Playbook.objects.get(version=2).steps) == 1


def test_disabling_a_playbook_in_the_admin_changes_that_version(client, lead):
    client.force_login(lead)
    client.post("/admin/playbooks/playbook/add/", playbook_form())
    first = Playbook.objects.get()

    form = playbook_form()
    del form["enabled"]
    client.post(f"/admin/playbooks/playbook/{first.pk}/change/", form)

    first.refresh_from_db()
    assert first.enabled is False
    assert Playbook.objects.count() == 1


@pytest.mark.parametrize("name", ["responder", "leadership"])
def test_other_roles_read_playbooks_but_do_not_change_them(request, client, name):
    playbook = Playbook.objects.create(
        slug="tag-it", name="Tag it", definition={"steps": TAG_STEPS}
    )
    client.force_login(request.getfixturevalue(name))

    viewed = client.get(f"/admin/playbooks/playbook/{playbook.pk}/change/")
    changed = client.post(f"/admin/playbooks/playbook/{playbook.pk}/change/", playbook_form())

    assert viewed.status_code == 200
    assert changed.status_code == 403
    assert Playbook.objects.count() == 1


# --- Runs, steps and action runs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("superuser", {"open", "Insider access to payroll"}),
        ("lead", {"open", "Insider access to payroll"}),
        ("leadership", {"open"}),
        ("responder", {"open", "Insider access to payroll"}),
    ],
)
@pytest.mark.parametrize("model", RECORDS)
def test_records_are_listed_for_visible_incidents_only(request, client, ran, name, sees, model):
    client.force_login(request.getfixturevalue(name))

    answer = client.get(f"/admin/playbooks/{model}/")

    assert answer.status_code == 200
    rows = answer.context["cl"].result_list
    incident_of = (lambda row: row.run.incident) if model == "runstep" else lambda r: r.incident
    assert {incident_of(row).title for row in rows} == sees


@pytest.mark.parametrize("name", ["superuser", "lead", "leadership"])
def test_nobody_adds_changes_or_deletes_records(request, client, ran, name):
    client.force_login(request.getfixturevalue(name))
    run = PlaybookRun.objects.filter(incident__restricted=False).get()
    rows = {
        "playbookrun": run,
        "runstep": run.steps.first(),
        "actionrun": ActionRun.objects.filter(incident=run.incident).first(),
    }

    for model, row in rows.items():
        url = f"/admin/playbooks/{model}/{row.pk}/"
        viewed = client.get(url + "change/")
        answers = [
            client.get(f"/admin/playbooks/{model}/add/").status_code,
            client.post(url + "change/", {"state": "failed", "status": "failed"}).status_code,
            client.post(url + "delete/", {"post": "yes"}).status_code,
        ]
        assert viewed.status_code == 200
        assert viewed.context["has_change_permission"] is False
        assert answers == [403, 403, 403], model
    assert RunStep.objects.filter(run=run, state="failed").count() == 0
    assert PlaybookRun.objects.get(pk=run.pk).status == "succeeded"


def test_a_restricted_run_is_not_found_for_leadership(client, leadership, ran):
    client.force_login(leadership)
    hidden = PlaybookRun.objects.get(incident__restricted=True)

    answer = client.get(f"/admin/playbooks/playbookrun/{hidden.pk}/change/")

    assert answer.status_code == 302
    assert answer.url == "/admin/"
