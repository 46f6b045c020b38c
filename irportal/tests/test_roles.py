import pytest
from django.contrib.auth.models import Group

from irportal import roles

pytestmark = pytest.mark.django_db


def fresh(user):
    """The same person in a later request: a new user object."""
    return type(user).objects.get(pk=user.pk)


def test_a_new_role_counts_at_the_next_request(responder):
    assert roles.roles_of(fresh(responder)) == {"responder"}

    responder.groups.add(Group.objects.get(name="lead"))

    assert roles.is_lead(fresh(responder))


def test_a_removed_role_stops_counting_at_the_next_request(lead):
    assert roles.is_lead(fresh(lead))

    Group.objects.get(name="lead").user_set.remove(lead)

    assert not roles.is_lead(fresh(lead))


def test_emptying_a_group_removes_the_role_from_everyone(lead):
    assert roles.is_lead(fresh(lead))

    Group.objects.get(name="lead").user_set.clear()

    assert not roles.is_lead(fresh(lead))


def test_roles_are_read_once_then_from_the_cache(responder, django_assert_num_queries):
    roles.roles_of(fresh(responder))
    person = fresh(responder)

    with django_assert_num_queries(0):
        assert roles.roles_of(person) == {"responder"}
