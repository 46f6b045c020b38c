"""A responder works an incident in real Chromium, against the app on a live server."""

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By

from cases.models import Task, TimelineEntry
from irportal.tests.browsing import sign_in, submit

# The live server's database is flushed after each test, which the timeline's append-only
# trigger refuses on SQLite (PostgreSQL truncates instead).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_responder_acknowledges_triages_and_notes(browser, live_server, responder: User, incident):
    sign_in(browser, live_server.url, "rui")
    browser.find_element(By.LINK_TEXT, incident.reference).click()

    submit(browser, "Acknowledge")
    browser.find_element(By.NAME, "reason").send_keys("confirmed with the owner")
    submit(browser, "Change status")
    browser.find_element(By.NAME, "summary").send_keys("Key found in a public gist")
    submit(browser, "Add to timeline")

    assert browser.find_element(By.ID, "status").text == "Triaged"
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "Key found in a public gist" in timeline
    assert "Status detected → triaged" in timeline
    kinds = list(TimelineEntry.objects.filter(incident=incident).values_list("kind", flat=True))
    assert kinds == ["incident.opened", "incident.acknowledged", "incident.status_changed", "note"]


def test_responder_adds_a_task_and_ticks_it_done(browser, live_server, responder: User, incident):
    sign_in(browser, live_server.url, "rui")
    browser.find_element(By.LINK_TEXT, incident.reference).click()

    browser.find_element(By.XPATH, "//summary[text()='Add a task']").click()
    browser.find_element(By.ID, "task-title").send_keys("Rotate the leaked key")
    submit(browser, "Add task")
    submit(browser, "Done")

    task = browser.find_element(By.CSS_SELECTOR, "#tasks + ul li")
    assert "Rotate the leaked key" in task.text
    assert task.find_element(By.CSS_SELECTOR, ".done").text == "Rotate the leaked key"
    stored = Task.objects.get(incident=incident)
    assert (stored.title, stored.done) == ("Rotate the leaked key", True)
    kinds = list(TimelineEntry.objects.filter(incident=incident).values_list("kind", flat=True))
    assert kinds == ["incident.opened", "task.added", "task.updated"]
