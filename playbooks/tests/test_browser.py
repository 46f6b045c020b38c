"""A lead runs a gated playbook from an incident in real Chromium, against the app on a
live server, with tasks run by the server as a worker would run them."""

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from cases.models import AffectedResource
from irportal.celery import app
from irportal.tests.browsing import sign_in, submit
from playbooks.aws import client
from playbooks.choices import RunStatus
from playbooks.models import Playbook, PlaybookRun
from playbooks.tests.conftest import ACCOUNT_ID, IMAGE_ID, REGION

# The live server's database is flushed after each test, which the timeline's append-only
# trigger refuses on SQLite (PostgreSQL truncates instead).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def worker_in_server():
    """Tasks run where they are sent: in the live server's thread, once its transaction
    commits (live_server's transactions are real, so on_commit fires by itself)."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def instance_id(account) -> str:
    ec2 = client("ec2", REGION)
    image = IMAGE_ID
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def test_lead_starts_a_gated_playbook_approves_it_and_sees_it_succeed(
    browser, live_server, worker_in_server, lead: User, incident, instance_id
):
    AffectedResource.objects.create(
        incident=incident,
        account_id=ACCOUNT_ID,
        region=REGION,
        identifier=instance_id,
        resource_type="AWS::EC2::Instance",
    )
    Playbook.objects.create(
        slug="tag-it",
        name="Tag it",
        definition={
            "steps": [
                {
                    "id": "tag",
                    "action": "tag_resource",
                    "parameters": {"resource": "${instance.id}"},
                },
                {
                    "id": "mark",
                    "action": "tag_resource",
                    "title": "Mark stage two",
                    "parameters": {"resource": "${instance.id}", "tags": {"stage": "two"}},
                    "approval": True,
                },
            ]
        },
    )

    sign_in(browser, live_server.url, "lena")
    browser.find_element(By.LINK_TEXT, incident.reference).click()
    browser.find_element(By.PARTIAL_LINK_TEXT, "Response").click()
    Select(browser.find_element(By.NAME, "playbook")).select_by_visible_text("Tag it (v1)")
    submit(browser, "Start playbook")

    run = browser.find_element(By.CSS_SELECTOR, "article.run")
    assert "Awaiting approval" in run.text
    submit(browser, "Approve")

    run = browser.find_element(By.CSS_SELECTOR, "article.run")
    assert run.find_element(By.CSS_SELECTOR, ".heading .badge").text == "Succeeded"
    assert "Approved step 2: Mark stage two." in browser.find_element(By.CSS_SELECTOR, "main").text
    assert PlaybookRun.objects.get().status == RunStatus.SUCCEEDED
    tags = client("ec2", REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )["Tags"]
    assert {t["Key"]: t["Value"] for t in tags}["stage"] == "two"
