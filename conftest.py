"""The cast every test shares, and the rule that CI fails rather than skips a missing service."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from rest_framework.test import APIClient

from cases import services
from cases.models import Incident, Participant
from irportal import roles
from irportal.actors import Actor

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Here rather than in playbooks/tests: it checks the evidence tests' AWS requests too.
pytest_plugins = ["playbooks.tests.response_policy"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgresql") and connection.vendor != "postgresql":
        _missing("PostgreSQL (set DATABASE_URL)")
    if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        _missing("Redis (set REDIS_URL)")
    if item.get_closest_marker("browser") and not (
        shutil.which("chromium") and shutil.which("chromedriver")
    ):
        _missing("Chromium and chromedriver (apt-get install chromium chromium-driver)")


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"this test needs {what}, and CI must provide it")
    pytest.skip(f"needs {what}")


def _member(username: str, role: str | None = None, **flags: Any) -> User:
    user = User.objects.create_user(username, password="x", **flags)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def lead(db: None) -> User:
    return _member("lena", roles.LEAD, is_staff=True)


@pytest.fixture
def responder(db: None) -> User:
    return _member("rui", roles.RESPONDER, is_staff=True)


@pytest.fixture
def other_responder(db: None) -> User:
    return _member("rita", roles.RESPONDER)


@pytest.fixture
def leadership(db: None) -> User:
    return _member("lou", roles.LEADERSHIP, is_staff=True)


@pytest.fixture
def integration(db: None) -> User:
    return _member("guardduty-bridge", roles.INTEGRATION)


@pytest.fixture
def outsider(db: None) -> User:
    """Signed in, but holds no role and takes part in nothing."""
    return _member("otto", is_staff=True)


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("sue", password="x")


@pytest.fixture
def make_incident(lead: User) -> Callable[..., Incident]:
    """Open an incident through the service, as the lead unless told otherwise."""

    def make(actor: User | None = None, **fields: Any) -> Incident:
        fields.setdefault("title", "Suspicious API calls from i-0abc")
        return services.open_incident(Actor.for_user(actor or lead), **fields)

    return make


@pytest.fixture
def incident(make_incident: Callable[..., Incident]) -> Incident:
    return make_incident()


@pytest.fixture
def restricted_incident(make_incident: Callable[..., Incident], responder: User) -> Incident:
    """Restricted, with `responder` on it and `other_responder` not."""
    incident = make_incident(title="Insider access to payroll", restricted=True)
    Participant.objects.create(incident=incident, user=responder, role="responder")
    return incident


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    """Each test's rules and roles come from its own database state, not an earlier test's."""
    from django.core.cache import cache

    from findings import services as findings_services

    findings_services.forget_rules()
    cache.clear()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server on a free local port: real boto3 calls over HTTP to a simulated AWS."""
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[name] = "testing"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, settings: Any) -> str:
    """Point every AWS client at moto, with its state wiped before the test."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    settings.AWS_ENDPOINT_URL = moto_server
    settings.AWS_DEFAULT_REGION = "eu-west-1"
    return moto_server


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    """An API client signed in as the given user (none: anonymous)."""

    def client_for(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (tests marked `browser`)."""
    from irportal.tests.browsing import chromium

    yield from chromium()
