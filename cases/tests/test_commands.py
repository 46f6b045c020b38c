import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from cases.models import Incident, TimelineEntry

pytestmark = pytest.mark.django_db


def test_issue_token_prints_a_working_token_last(responder, incident):
    out = io.StringIO()
    call_command("issue_token", "rui", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip().splitlines()[-1]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    answer = client.get("/api/v1/incidents/")

    assert answer.status_code == 200
    assert answer.json()["count"] == 1


def test_tokens_are_not_stored_in_the_clear(responder):
    from knox.models import AuthToken

    out = io.StringIO()
    call_command("issue_token", "rui", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip()

    stored = AuthToken.objects.get(user=responder)
    assert key not in (stored.digest, stored.token_key)


def test_issue_token_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="no active user named 'ghost'"):
        call_command("issue_token", "ghost")


def test_seed_demo_runs_twice_and_prints_the_same_logins(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first, second = io.StringIO(), io.StringIO()

    call_command("seed_demo", stdout=first, stderr=io.StringIO())
    opened = Incident.objects.count()
    call_command("seed_demo", stdout=second, stderr=io.StringIO())

    assert first.getvalue() == second.getvalue()
    assert "alice" in first.getvalue()
    assert Incident.objects.count() == opened > 0
    for incident in Incident.objects.all():
        assert TimelineEntry.objects.verify_chain(incident) is None


def test_issue_token_can_set_an_expiry(responder):
    from knox.models import AuthToken

    call_command("issue_token", "rui", "--days", "30", stdout=io.StringIO(), stderr=io.StringIO())

    assert AuthToken.objects.get(user=responder).expiry is not None


def test_an_expired_token_is_refused_and_purged(responder):
    from datetime import timedelta

    from knox.models import AuthToken

    from irportal.tasks import purge_expired_tokens

    _, expired = AuthToken.objects.create(user=responder, expiry=timedelta(seconds=-1))
    AuthToken.objects.create(user=responder, expiry=timedelta(seconds=-1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {expired}")

    assert client.get("/api/v1/incidents/").status_code == 401
    assert purge_expired_tokens() == 1
    assert not AuthToken.objects.filter(user=responder).exists()
