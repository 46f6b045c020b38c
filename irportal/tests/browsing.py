"""What the Chromium tests share: the browser itself (the `browser` fixture in the root
conftest), signing in, and submitting a form."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium, quit however the test ends."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def submit(browser: webdriver.Chrome, button_text: str) -> None:
    """Click a form's button and wait for the page it leads to."""
    button = browser.find_element(By.XPATH, f"//button[text()='{button_text}']")
    button.click()
    WebDriverWait(browser, 20).until(replaced(button))


# What ChromeDriver sometimes answers, instead of "stale element", about an element of a
# page that has just been replaced (SeleniumHQ/selenium#15401). With Selenium's own
# `staleness_of`, two runs of the browser tests in about thirty failed on it here.
NODE_OF_ANOTHER_DOCUMENT = "Node with given id does not belong to the document"


def replaced(element: WebElement) -> Callable[[webdriver.Chrome], bool]:
    """Whether the page `element` was on has been replaced by another."""

    def check(_browser: webdriver.Chrome) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if NODE_OF_ANOTHER_DOCUMENT in (error.msg or ""):
                return True
            raise
        return False

    return check


def sign_in(browser: webdriver.Chrome, live_server_url: str, username: str) -> None:
    """Sign in as one of the cast (every test user's password is `x`)."""
    browser.get(f"{live_server_url}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("x")
    submit(browser, "Sign in")
