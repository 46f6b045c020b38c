"""API tokens: knox's rules, checked by the project's own one-statement lookup."""

import secrets
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS
from rest_framework import exceptions
from rest_framework.test import APIClient, APIRequestFactory

from irportal import roles
from irportal.auth import TokenAuthentication

pytestmark = pytest.mark.django_db


def authenticate(key: str) -> tuple[User, AuthToken]:
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {key}")
    found = TokenAuthentication().authenticate(request)
    assert found is not None
    return found  # type: ignore[return-value]


def test_a_token_finds_its_user_as_the_orm_loads_it(responder):
    token, key = AuthToken.objects.create(user=responder)

    user, auth_token = authenticate(key)

    stored = User.objects.get(pk=responder.pk)
    for field in User._meta.concrete_fields:
        assert getattr(user, field.attname) == getattr(stored, field.attname), field.name
    assert auth_token.digest == token.digest and auth_token.user is user
    assert not user._state.adding and user._state.db == "default"


def test_it_takes_one_statement(responder):
    _, key = AuthToken.objects.create(user=responder)

    with CaptureQueriesContext(connection) as queries:
        authenticate(key)

    assert len(queries) == 1


def test_the_same_statement_reads_the_users_roles_and_only_roles(responder):
    responder.groups.add(Group.objects.get(name="lead"), Group.objects.create(name="book club"))
    _, key = AuthToken.objects.create(user=responder)

    with CaptureQueriesContext(connection) as queries:
        user, _ = authenticate(key)
        held = roles.roles_of(user)

    assert held == {"responder", "lead"}
    assert len(queries) == 1
    assert cache.get(roles.roles_cache_key(responder.pk)) is None  # the cache was not asked


def test_a_user_with_no_role_authenticates_and_holds_none(db):
    nobody = User.objects.create_user("nora")
    _, key = AuthToken.objects.create(user=nobody)

    user, _ = authenticate(key)

    assert user == nobody and roles.roles_of(user) == frozenset()


def test_an_api_request_sees_the_roles_as_they_are_not_as_cached(responder, restricted_incident):
    outsider = User.objects.create_user("olga")
    outsider.groups.add(Group.objects.get(name="responder"))
    _, key = AuthToken.objects.create(user=outsider)
    # What the cache would say had a lead role been taken away without it hearing.
    cache.set(roles.roles_cache_key(outsider.pk), ["lead"])

    answer = APIClient(HTTP_AUTHORIZATION=f"Token {key}").get(
        f"/api/v1/incidents/{restricted_incident.reference}/"
    )

    assert answer.status_code == 404


def test_a_token_that_shares_the_key_prefix_but_not_the_rest_is_refused(responder):
    _, key = AuthToken.objects.create(user=responder)
    forged = key[: CONSTANTS.TOKEN_KEY_LENGTH] + "0" * (len(key) - CONSTANTS.TOKEN_KEY_LENGTH)

    with pytest.raises(exceptions.AuthenticationFailed):
        authenticate(forged)


def test_of_two_tokens_with_one_key_prefix_each_finds_its_own(responder, other_responder):
    first, first_key = AuthToken.objects.create(user=responder)
    # Knox looks tokens up by their first characters, so two may share them.
    second_key = first.token_key + secrets.token_hex(len(first_key) // 2)[len(first.token_key) :]
    AuthToken.objects.bulk_create(
        [AuthToken(digest=hash_token(second_key), token_key=first.token_key, user=other_responder)]
    )

    other_responder.groups.add(Group.objects.get(name="leadership"))

    assert authenticate(first_key)[0] == responder
    second_user = authenticate(second_key)[0]
    assert second_user == other_responder
    assert roles.roles_of(second_user) == {"responder", "leadership"}


def test_an_inactive_users_token_is_refused(responder):
    _, key = AuthToken.objects.create(user=responder)
    User.objects.filter(pk=responder.pk).update(is_active=False)

    answer = APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/incidents/")

    assert answer.status_code == 401


def test_an_expired_token_is_refused_and_deleted_a_live_one_of_the_same_user_is_not(responder):
    _, expired = AuthToken.objects.create(user=responder, expiry=timedelta(seconds=-1))
    live, live_key = AuthToken.objects.create(user=responder, expiry=timedelta(days=1))

    with pytest.raises(exceptions.AuthenticationFailed):
        authenticate(expired)

    assert list(AuthToken.objects.filter(user=responder)) == [live]
    assert authenticate(live_key)[0] == responder


def test_a_token_that_is_not_text_is_refused_not_a_server_error(responder):
    client = APIClient(HTTP_AUTHORIZATION="Token \xe9\xe9\xe9")

    assert client.get("/api/v1/incidents/").status_code == 401
