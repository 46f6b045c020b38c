"""The roles people and integrations hold, as Django groups created by a migration."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache

RESPONDER = "responder"
LEAD = "lead"
LEADERSHIP = "leadership"
INTEGRATION = "integration"
ALL = (RESPONDER, LEAD, LEADERSHIP, INTEGRATION)

# Roles that work incidents: create them, change them, add to them.
WORKING = frozenset({RESPONDER, LEAD, INTEGRATION})


# Every page asks (API requests read roles with their token, in irportal.auth); the
# answer changes only when someone's groups do, and then `irportal.signals` forgets it.
# The expiry is a backstop, not the mechanism.
ROLES_CACHE_SECONDS = 300


def roles_cache_key(user_id: int) -> str:
    return f"irportal:roles:{user_id}"


def roles_of(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The user's role names: kept on the user object for the request, and in the cache."""
    if not user.is_authenticated:
        return frozenset()
    held: frozenset[str] | None = getattr(user, "_irportal_roles", None)
    if held is None:
        key = roles_cache_key(user.pk)
        stored = cache.get(key)
        if stored is None:
            names = user.groups.filter(name__in=ALL).values_list("name", flat=True)  # type: ignore[attr-defined]
            stored = sorted(names)
            cache.set(key, stored, ROLES_CACHE_SECONDS)
        held = remember_roles(user, stored)
    return held


def remember_roles(user: AbstractBaseUser, names: Iterable[str]) -> frozenset[str]:
    """Keep `names` (role names, read with `name__in=ALL` or its SQL equivalent) as the
    user's roles for the rest of the request. The API's token lookup reads them with the
    token, so API requests do not ask the cache."""
    held = frozenset(names)
    user._irportal_roles = held  # type: ignore[attr-defined]
    return held


def is_lead(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Leads and superusers see every incident and approve what needs approval."""
    return bool(getattr(user, "is_superuser", False)) or LEAD in roles_of(user)


def may_open_incidents(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(getattr(user, "is_superuser", False)) or bool(roles_of(user) & WORKING)
