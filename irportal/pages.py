"""What every page needs to know about who is asking."""

from typing import cast

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from irportal import roles
from irportal.actors import Actor


def page_user(request: HttpRequest) -> User:
    """The signed-in person; integrations hold tokens for the API, not page sessions."""
    user = cast(User, request.user)
    if roles.roles_of(user) == {roles.INTEGRATION} and not user.is_superuser:
        raise PermissionDenied("Integration accounts use the API.")
    return user


def page_actor(request: HttpRequest) -> Actor:
    return Actor.for_user(page_user(request))
