"""Saving playbook versions: a version's steps never change once saved, so a change to
its name, description or definition is saved as the next version of the same slug.

Shared by the API and the admin.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from rest_framework import serializers

from irportal.errors import StateConflict
from playbooks import definitions
from playbooks.models import Playbook

logger = logging.getLogger(__name__)

# What a version is: changing any of these makes the next version.
CONTENT_FIELDS = ("name", "description", "definition")


def differs(playbook: Playbook, changes: dict[str, Any]) -> bool:
    """Whether `changes` (cleaned) would make `playbook` say something else."""
    name = changes.get("name", playbook.name)
    description = changes.get("description", playbook.description)
    if "definition" not in changes:
        return (name, description) != (playbook.name, playbook.description)
    return not same_content(playbook, name, description, changes["definition"])


def save_next_version(draft: Playbook, created_by: str) -> Playbook:
    """Save `draft` (a stored version changed in memory, or a new one) as the version after
    the newest of its slug; the stored version it came from stays as it was."""
    draft.pk = None
    draft._state.adding = True
    draft.builtin = False
    draft.created_by = created_by
    try:
        with transaction.atomic():
            newest = Playbook.objects.filter(slug=draft.slug).aggregate(v=Max("version"))["v"]
            draft.version = (newest or 0) + 1
            draft.save(force_insert=True)
    except IntegrityError:
        # Two people saved a version of the same playbook at the same moment.
        raise StateConflict(
            f"another version of {draft.slug} was saved just now; reload and try again"
        ) from None
    logger.info("playbook.saved slug=%s version=%s by=%s", draft.slug, draft.version, created_by)
    return draft


def same_content(playbook: Playbook, name: str, description: str, definition: Any) -> bool:
    """Whether a version says the same as what is offered (definitions compared cleaned, so
    defaults spelled out or left out do not count as a difference)."""
    if (playbook.name, playbook.description) != (name, description):
        return False
    try:
        stored = definitions.clean_definition(playbook.definition)
    except serializers.ValidationError:
        return False  # no longer valid (an action was withdrawn): anything new differs
    return stored == definition
