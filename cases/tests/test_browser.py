"""A responder works an incident in real Chromium, against the app on a live server."""

import shutil

import pytest
from django.contrib.auth.models import User
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from cases.models import TimelineEntry

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# The live server's database is flushed after each test, which the timeline's append-only
# trigger refuses on SQLite (PostgreSQL truncates instead).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgresql,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def submit(browser, button_text):
    """Click a form's button and wait for the page it leads to."""
    button = browser.find_element(By.XPATH, f"//button[text()='{button_text}']")
    button.click()
    WebDriverWait(browser, 10).until(staleness_of(button))


def sign_in(browser, live_server, username):
    browser.get(f"{live_server.url}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("x")
    submit(browser, "Sign in")


def test_responder_acknowledges_triages_and_notes(browser, live_server, responder: User, incident):
    sign_in(browser, live_server, "rui")
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
