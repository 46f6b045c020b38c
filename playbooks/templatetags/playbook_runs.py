"""Template helpers for response pages, and for the incident page's link to them (the
cases app loads these in its templates rather than importing playbooks)."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.db.models import Count, Q

from playbooks import actions
from playbooks.choices import ActionState, RunStatus
from playbooks.models import ActionRun

register = template.Library()


@register.simple_tag
def response_summary(incident: Any) -> dict[str, int]:
    """How many playbook runs the incident has, and how many wait for a lead's approval."""
    return incident.playbook_runs.aggregate(  # type: ignore[no-any-return]
        runs=Count("pk"), awaiting=Count("pk", filter=Q(status=RunStatus.AWAITING_APPROVAL))
    )


@register.filter
def undo_offered(action_run: ActionRun | None) -> bool:
    """Whether undoing this action run would do something: it acted, and its action undoes."""
    if action_run is None or action_run.dry_run or not action_run.changed:
        return False
    action = actions.REGISTRY.get(action_run.action)
    return action_run.state == ActionState.SUCCEEDED and bool(action and action.undoable)


@register.filter
def action_title(name: str) -> str:
    action = actions.REGISTRY.get(name)
    return action.title if action else name


@register.filter
def target_inputs(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """An action's inputs that say what it acts on and how, as (name, text); the account
    and region are shown apart, and inputs left empty not at all."""
    return [
        (name, shown(value))
        for name, value in inputs.items()
        if name not in ("account_id", "region") and value not in ("", None, {}, [])
    ]


@register.filter
def shown(value: Any) -> str:
    """A value from inputs or outputs as text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
