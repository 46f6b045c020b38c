"""Who may do what with an incident's evidence, for the API and the pages alike.

Reading follows the incident's visibility (a hidden incident answers 404, decided by
`Incident.objects.visible_to` before any rule here is asked). Beyond reading:

- work: add evidence and re-verify it, as anyone who may change the incident may;
- take out: download bytes or record a copy handed over. People only: integrations upload
  (automation does collect) but never take evidence out of the store;
- keep: how long an item is kept, legal holds and disposal belong to leads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from cases.models import Incident
from irportal import roles

READ, WORK, TAKE_OUT, KEEP = "read", "work", "take_out", "keep"


def may_work(user: Any, incident: Incident) -> bool:
    return incident.may_change(user)


def may_take_out(user: Any, incident: Incident) -> bool:
    if roles.is_lead(user):
        return True
    return roles.INTEGRATION not in roles.roles_of(user) and incident.may_change(user)


def may_keep(user: Any, incident: Incident) -> bool:
    return roles.is_lead(user)


RULES: dict[str, tuple[Callable[[Any, Incident], bool], str]] = {
    READ: (lambda user, incident: True, ""),
    WORK: (may_work, "You can read this incident's evidence but not add to it or verify it."),
    TAKE_OUT: (
        may_take_out,
        "Only people working this incident take evidence out of the store.",
    ),
    KEEP: (may_keep, "Only a lead changes retention, legal holds or disposal."),
}


class EvidencePermission(permissions.BasePermission):
    """The rule the view's `access` map names for the action; an action the map does not
    name is refused, so a new action cannot slip through unguarded."""

    message = "Refused."

    def has_permission(self, request: Request, view: Any) -> bool:
        rule = view.access.get(view.action)
        if rule is None:
            return False
        incident = view.incident  # 404 first when the incident is hidden
        allowed, self.message = RULES[rule]
        return allowed(request.user, incident)
