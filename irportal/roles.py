"""The roles people and integrations hold, as Django groups created by a migration."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

RESPONDER = "responder"
LEAD = "lead"
LEADERSHIP = "leadership"
INTEGRATION = "integration"
ALL = (RESPONDER, LEAD, LEADERSHIP, INTEGRATION)

# Roles that work incidents: create them, change them, add to them.
WORKING = frozenset({RESPONDER, LEAD, INTEGRATION})


def roles_of(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The user's role names, read once per user object (a request's user lives as long)."""
    if not user.is_authenticated:
        return frozenset()
    cached: frozenset[str] | None = getattr(user, "_irportal_roles", None)
    if cached is None:
        names = user.groups.filter(name__in=ALL).values_list("name", flat=True)  # type: ignore[attr-defined]
        cached = frozenset(names)
        user._irportal_roles = cached  # type: ignore[union-attr,attr-defined]
    return cached


def is_lead(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Leads and superusers see every incident and approve what needs approval."""
    return bool(getattr(user, "is_superuser", False)) or LEAD in roles_of(user)


def may_open_incidents(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(getattr(user, "is_superuser", False)) or bool(roles_of(user) & WORKING)
