"""The built-in playbook library and YAML files: loading, versions, import and export."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

from findings import demo
from findings import services as findings
from findings.choices import RuleEffect
from findings.models import TriageRule
from irportal.actors import Actor
from playbooks import library
from playbooks.choices import Environment, RunStatus, StepState
from playbooks.models import CloudAccount, Playbook, PlaybookRun
from playbooks.tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.django_db

TAG_IT = """\
slug: tag-it
name: Tag it
description: Mark the instance.
steps:
  - id: mark
    action: tag_resource
    parameters:
      resource: ${instance.id}
"""


@pytest.fixture
def own_library(tmp_path, monkeypatch) -> Path:
    """A library directory of the test's own, with one playbook in it."""
    (tmp_path / "tag-it.yaml").write_text(TAG_IT)
    monkeypatch.setattr(library, "LIBRARY", tmp_path)
    return tmp_path


def load() -> str:
    out = StringIO()
    call_command("load_playbooks", stdout=out)
    return out.getvalue()


def import_files(*paths: Path) -> str:
    out = StringIO()
    call_command("import_playbook", *map(str, paths), stdout=out)
    return out.getvalue()


def export(*args: str) -> str:
    out = StringIO()
    call_command("export_playbook", *args, stdout=out)
    return out.getvalue()


def versions(slug: str) -> list[int]:
    return list(
        Playbook.objects.filter(slug=slug).order_by("version").values_list("version", flat=True)
    )


@pytest.mark.parametrize("path", library.library_files(), ids=lambda path: path.name)
def test_every_library_file_validates(path):
    document = library.read(path)

    assert document.slug == path.stem
    assert document.name and document.definition["steps"]
    # Each cites what it was written from.
    assert "https://" in document.description


def assumed_role_event(severity: float) -> dict[str, Any]:
    """A role's temporary key used from outside: GuardDuty names the role as the user."""
    event = demo.guardduty_event(
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        severity,
        access_key=("web-server-role", "ASIAEXAMPLEEXAMPLE01"),
        account=ACCOUNT_ID,
    )
    event["detail"]["resource"]["accessKeyDetails"]["userType"] = "AssumedRole"
    return event


# Each playbook on a finding of the kind it is for, and the parameters its steps resolve to.
STARTS = {
    "compromised-ec2-instance": (
        lambda: demo.guardduty_event(
            "Backdoor:EC2/C&CActivity.B", 8.0, instance_id="i-0abc1234567890def", account=ACCOUNT_ID
        ),
        {
            "mark-instance": {"resource": "i-0abc1234567890def"},
            "snapshot-volumes": {"instance_id": "i-0abc1234567890def"},
            "take-out-of-service": {"instance_id": "i-0abc1234567890def"},
            "isolate": {"instance_id": "i-0abc1234567890def"},
            "quarantine-instance-profile": {
                "instance_id": "i-0abc1234567890def",
                "profile_name": "ir-portal-quarantine",
            },
        },
    ),
    "compromised-iam-credentials": (
        lambda: demo.guardduty_event(
            "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
            8.0,
            access_key=("deploy-bot", "AKIAEXAMPLEEXAMPLE01"),
            account=ACCOUNT_ID,
        ),
        {
            "deactivate-access-key": {
                "access_key_id": "AKIAEXAMPLEEXAMPLE01",
                "user_name": "deploy-bot",
            },
            "mark-user": {"resource": f"arn:aws:iam::{ACCOUNT_ID}:user/deploy-bot"},
            "deny-user-everything": {"principal_type": "user", "principal_name": "deploy-bot"},
        },
    ),
    "compromised-role-session": (
        lambda: assumed_role_event(8.0),
        {
            "revoke-older-sessions": {"role_name": "web-server-role"},
            "mark-role": {"resource": f"arn:aws:iam::{ACCOUNT_ID}:role/web-server-role"},
            "deny-role-everything": {"principal_type": "role", "principal_name": "web-server-role"},
        },
    ),
    "public-s3-bucket": (
        lambda: demo.guardduty_event(
            "Policy:S3/BucketAnonymousAccessGranted", 8.0, bucket="payroll", account=ACCOUNT_ID
        ),
        {"mark-bucket": {"resource": "payroll"}, "block-public-access": {"bucket": "payroll"}},
    ),
}


@pytest.fixture
def registered(db) -> CloudAccount:
    """The account, registered; a dry run makes no AWS call, so nothing needs to answer."""
    return CloudAccount.objects.create(
        account_id=ACCOUNT_ID, name="Workload", environment=Environment.DEMO
    )


def start_by_rule(slug: str, event: dict[str, Any], integration: Any) -> PlaybookRun:
    call_command("load_playbooks", verbosity=0)
    TriageRule.objects.all().delete()
    TriageRule.objects.create(
        name=f"Start {slug}", effect=RuleEffect.OPEN_INCIDENT, playbook=slug, playbook_dry_run=True
    )
    findings.ingest(Actor.for_user(integration), [event])
    return PlaybookRun.objects.get(playbook__slug=slug)


@pytest.mark.parametrize("slug", STARTS)
def test_each_playbook_starts_on_the_finding_it_is_for(slug, registered, integration):
    make_event, parameters = STARTS[slug]

    run = start_by_rule(slug, make_event(), integration)

    assert run.status == RunStatus.SUCCEEDED  # a dry run: every step planned, none waits
    steps = run.steps.order_by("position")
    assert {s.key: s.state for s in steps} == dict.fromkeys(parameters, StepState.SUCCEEDED)
    for step in steps:
        resolved = {k: v for k, v in step.parameters.items() if k in parameters[step.key]}
        assert resolved == parameters[step.key], step.key
        assert (step.parameters["account_id"], step.parameters["region"]) == (ACCOUNT_ID, REGION)


def test_the_role_playbook_leaves_out_deny_all_below_sev2(registered, integration):
    run = start_by_rule("compromised-role-session", assumed_role_event(5.0), integration)

    assert run.incident.severity == "sev3"
    states = dict(run.steps.values_list("key", "state"))
    assert states["deny-role-everything"] == StepState.SKIPPED
    assert states["revoke-older-sessions"] == StepState.SUCCEEDED


def test_the_library_holds_the_four_built_in_playbooks():
    assert {path.stem for path in library.library_files()} == {
        "compromised-ec2-instance",
        "compromised-iam-credentials",
        "compromised-role-session",
        "public-s3-bucket",
    }


def test_it_loads_every_library_file_as_a_built_in_first_version():
    load()

    loaded = Playbook.objects.all()
    assert sorted(p.slug for p in loaded) == sorted(p.stem for p in library.library_files())
    assert {(p.version, p.builtin, p.enabled, p.created_by) for p in loaded} == {
        (1, True, True, "load_playbooks")
    }


def test_loading_twice_makes_no_new_versions():
    load()
    before = list(Playbook.objects.values_list("pk", "version"))

    again = load()

    assert list(Playbook.objects.values_list("pk", "version")) == before
    assert again.count("unchanged") == len(before)


def test_the_role_playbook_offers_deny_all_only_for_sev1_and_sev2():
    steps = library.read(library.LIBRARY / "compromised-role-session.yaml").definition["steps"]

    deny = next(step for step in steps if step["action"] == "iam_deny_all")
    assert deny["approval"] is True
    assert deny["when"] == {"in": ["incident.severity", ["sev1", "sev2"]]}


def test_the_instance_playbook_gathers_evidence_before_it_isolates():
    steps = library.read(library.LIBRARY / "compromised-ec2-instance.yaml").definition["steps"]

    actions = [step["action"] for step in steps]
    assert actions.index("ec2_snapshot_volumes") < actions.index("ec2_isolate_instance")
    snapshot = steps[actions.index("ec2_snapshot_volumes")]
    assert snapshot["on_failure"] == "stop"
    assert steps[-1]["action"] == "ec2_quarantine_instance_profile"
    assert steps[-1]["approval"] is True


def test_an_edited_file_loads_as_the_next_version(own_library):
    load()
    first = Playbook.objects.get(slug="tag-it")

    (own_library / "tag-it.yaml").write_text(TAG_IT.replace("Mark the instance.", "Mark it."))
    out = load()

    assert versions("tag-it") == [1, 2]
    assert Playbook.objects.get(slug="tag-it", version=2).description == "Mark it."
    first.refresh_from_db()
    assert first.description == "Mark the instance."  # a version is never edited
    assert "tag-it v2 loaded" in out


def test_a_changed_step_is_a_change_but_reformatting_the_file_is_not(own_library):
    load()

    reformatted = yaml.safe_dump(yaml.safe_load(TAG_IT), default_flow_style=True)
    (own_library / "tag-it.yaml").write_text(reformatted)
    load()
    assert versions("tag-it") == [1]

    (own_library / "tag-it.yaml").write_text(TAG_IT + "    on_failure: continue\n")
    load()
    assert versions("tag-it") == [1, 2]


def test_a_persons_edit_of_a_built_in_playbook_stays_until_the_file_changes(own_library):
    load()
    edited = Playbook.objects.get(slug="tag-it")
    edited.pk, edited.version, edited.builtin, edited.name = None, 2, False, "Tag it (ours)"
    edited.save()

    load()
    assert versions("tag-it") == [1, 2]

    (own_library / "tag-it.yaml").write_text(TAG_IT.replace("name: Tag it", "name: Tag it now"))
    load()
    assert versions("tag-it") == [1, 2, 3]
    assert Playbook.objects.get(slug="tag-it", version=3).builtin


def test_a_bad_library_file_loads_nothing(own_library):
    (own_library / "broken.yaml").write_text(
        TAG_IT.replace("tag-it", "broken").replace("tag_", "tack_")
    )

    with pytest.raises(CommandError, match=r"broken.yaml: steps\[0\].action: no action named"):
        load()

    assert not Playbook.objects.exists()


def test_import_and_export_give_back_the_same_playbook(tmp_path):
    source = tmp_path / "tag-it.yaml"
    source.write_text(TAG_IT)
    assert "tag-it v1 imported" in import_files(source)
    imported = Playbook.objects.get(slug="tag-it")
    assert (imported.builtin, imported.created_by) == (False, "import_playbook")

    exported = tmp_path / "exported.yaml"
    export("tag-it", "-o", str(exported))
    assert library.read(exported) == library.read(source)
    assert export("tag-it") == exported.read_text()
    assert list(yaml.safe_load(exported.read_text())["steps"][0])[:2] == ["id", "action"]

    assert "unchanged" in import_files(exported)
    assert versions("tag-it") == [1]


def test_importing_a_changed_file_makes_the_next_version_and_export_picks_any(tmp_path):
    source = tmp_path / "tag-it.yaml"
    source.write_text(TAG_IT)
    import_files(source)
    source.write_text(TAG_IT.replace("name: Tag it", "name: Tag it again"))

    import_files(source)

    assert versions("tag-it") == [1, 2]
    assert yaml.safe_load(export("tag-it"))["name"] == "Tag it again"
    assert yaml.safe_load(export("tag-it", "--version", "1"))["name"] == "Tag it"


def test_an_exported_file_with_its_version_imports_as_the_next_version(tmp_path):
    source = tmp_path / "tag-it.yaml"
    source.write_text(TAG_IT)
    import_files(source)
    source.write_text(
        TAG_IT.replace("slug: tag-it", "slug: tag-it\nversion: 7") + "    title: Tag\n"
    )

    import_files(source)

    assert versions("tag-it") == [1, 2]


def test_exporting_a_playbook_that_does_not_exist_fails():
    with pytest.raises(CommandError, match="no playbook nothing-here"):
        export("nothing-here")
    with pytest.raises(CommandError, match="no playbook nothing-here v3"):
        export("nothing-here", "--version", "3")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (TAG_IT.replace("tag_resource", "tack_resource"), r"steps\[0\]\.action"),
        (TAG_IT.replace("resource: ", "resorce: "), r"steps\[0\]\.parameters"),
        (TAG_IT.replace("name: Tag it\n", ""), "name"),
        (TAG_IT.replace("slug: tag-it", "slug: Tag It"), "slug"),
        (TAG_IT.replace("steps:", "stpes:"), "steps"),
        (TAG_IT + "owner: me\n", "owner"),
        (TAG_IT + "  - id: [", "yaml"),
        ("- just a list\n", "yaml"),
    ],
    ids=["action", "parameter", "name", "slug", "steps", "unknown field", "syntax", "list"],
)
def test_a_bad_file_is_named_with_its_field_and_nothing_is_imported(tmp_path, text, field):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(TAG_IT.replace("tag-it", "good-one"))
    bad.write_text(text)

    with pytest.raises(CommandError) as refused:
        import_files(good, bad)

    (line,) = str(refused.value).splitlines()
    assert line.startswith(f"{bad}: ")
    assert re.match(rf"{field}: ", line.removeprefix(f"{bad}: "))
    assert not Playbook.objects.exists()


def test_two_files_with_one_slug_are_refused(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(TAG_IT)
    second.write_text(TAG_IT.replace("name: Tag it", "name: Other"))

    with pytest.raises(CommandError, match=rf"{second}: slug: tag-it is in {first} too"):
        import_files(first, second)

    assert not Playbook.objects.exists()


def test_a_bad_file_exits_non_zero_with_one_line_on_stderr(tmp_path):
    """As run from a shell. The file is refused before the database is touched, so the
    command's own database is never reached."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(TAG_IT.replace("tag_resource", "tack_resource"))

    finished = subprocess.run(
        [sys.executable, "manage.py", "import_playbook", str(bad)],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "irportal.test_settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert finished.returncode == 1, finished.stderr
    (line,) = finished.stderr.strip().splitlines()
    assert str(bad) in line and "steps[0].action" in line
    assert finished.stdout == ""
