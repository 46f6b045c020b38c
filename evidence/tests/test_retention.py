"""How long evidence is kept by default: the longest class that the incident's severity or
category calls for, and never less than the standard one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from evidence import services
from evidence.tests.test_api import add_item

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("severity", "category", "expected"),
    [
        ("sev1", "other", "long"),
        ("sev3", "data_exposure", "long"),
        ("sev1", "data_exposure", "long"),
        ("sev3", "other", "standard"),
        ("sev4", "malware", "standard"),
    ],
)
def test_retention_defaults_by_severity_and_category(make_incident, severity, category, expected):
    incident = make_incident(severity=severity, category=category)

    assert services.default_retention(incident) == expected


def test_the_longest_class_called_for_wins(make_incident, settings):
    settings.EVIDENCE_RETENTION_BY_SEVERITY = {"sev4": "short", "sev2": "long"}
    settings.EVIDENCE_RETENTION_BY_CATEGORY = {"malware": "long", "other": "short"}

    def default_for(severity: str, category: str) -> str:
        return services.default_retention(make_incident(severity=severity, category=category))

    assert default_for("sev4", "malware") == "long"
    assert default_for("sev2", "other") == "long"
    # A class shorter than the default does not shorten it.
    assert default_for("sev4", "other") == "standard"


def test_an_upload_is_kept_for_its_incidents_default(make_incident, responder):
    item = add_item(make_incident(severity="sev1"), responder)

    assert item.retention_class == "long"
    kept_for = item.retain_until - item.acquired_at
    assert abs(kept_for - timedelta(days=2555)) < timedelta(minutes=1)
