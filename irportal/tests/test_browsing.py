"""The browser tests' wait for the next page, on ChromeDriver's answers about an element."""

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

from irportal.tests.browsing import NODE_OF_ANOTHER_DOCUMENT, replaced


class Element:
    """Stands in for a WebElement: answers `is_enabled` as ChromeDriver would."""

    def __init__(self, answer: Exception | None = None) -> None:
        self.answer = answer

    def is_enabled(self) -> bool:
        if self.answer:
            raise self.answer
        return True


@pytest.mark.parametrize(
    ("answer", "gone"),
    [
        (None, False),
        (StaleElementReferenceException("stale element reference"), True),
        (WebDriverException(f"unknown error: {{'message': '{NODE_OF_ANOTHER_DOCUMENT}'}}"), True),
    ],
    ids=["still on the page", "stale", "node of another document"],
)
def test_the_page_is_replaced_when_its_element_is_stale_however_said(answer, gone):
    assert replaced(Element(answer))(None) is gone


def test_any_other_error_is_raised():
    with pytest.raises(WebDriverException, match="chrome not reachable"):
        replaced(Element(WebDriverException("chrome not reachable")))(None)
