"""Operations that change incidents. Each takes the actor and writes the timeline with it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from cases.choices import MANUAL_ENTRY_KINDS, EntryKind, ParticipantRole, Severity, Status
from cases.models import Incident, IncidentPart, Participant, ReferenceCounter, TimelineEntry
from irportal import roles
from irportal.actors import Actor

logger = logging.getLogger(__name__)

# Incident fields a person may edit directly; status moves only through `move_to`.
EDITABLE_INCIDENT_FIELDS = frozenset(
    {"title", "summary", "severity", "category", "tlp", "restricted", "detected_at", "reported_at"}
)


def next_reference(year: int) -> str:
    """Hand out the next reference of the year, in the caller's transaction.

    One statement. The counter row it increments stays locked until the transaction ends,
    so creations take their numbers one after the other. A creation that fails rolls its
    number back, and the next one takes it: nothing outside the transaction saw it, so
    references are never reused and have no gaps. Taking the number in a transaction of
    its own would hold the lock for less time, but costs a second commit per incident,
    and the API then creates about a tenth fewer incidents a second (bench/api.py).
    """
    table = ReferenceCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (year, last_number) VALUES (%s, 1) "  # noqa: S608
            f"ON CONFLICT (year) DO UPDATE SET last_number = {table}.last_number + 1 "
            "RETURNING last_number",
            [year],
        )
        (number,) = cursor.fetchone()
    return f"IR-{year}-{number:04d}"


def open_incident(actor: Actor, **fields: Any) -> Incident:
    """Create an incident and the first entry of its timeline."""
    unknown = set(fields) - EDITABLE_INCIDENT_FIELDS
    if unknown:
        raise ValueError(f"not incident fields: {', '.join(sorted(unknown))}")

    now = timezone.now()
    with transaction.atomic():
        reference = next_reference(now.year)
        incident = Incident(reference=reference, created_by=actor.user, **fields)
        incident.save(force_insert=True)
        TimelineEntry.objects.append(
            incident,
            actor,
            EntryKind.INCIDENT_OPENED,
            f"Opened {reference}: {incident.title}",
            {"fields": snapshot(incident, sorted(EDITABLE_INCIDENT_FIELDS))},
            occurred_at=incident.reported_at,
            opening=True,
        )
        if incident.restricted:
            keep_on_restricted(actor, incident)
    logger.info(
        "incident.opened incident=%s severity=%s actor=%s", reference, incident.severity, actor
    )
    return incident


def change(actor: Actor, obj: Incident | IncidentPart, changes: dict[str, Any]) -> bool:
    """Apply `changes` to an incident or one of its parts and record what changed.

    The row is locked and re-read first, so "before" is what the database held and two
    people editing at once are recorded one after the other. False when nothing changed.
    """
    if isinstance(obj, Incident) and set(changes) - EDITABLE_INCIDENT_FIELDS:
        unknown = ", ".join(sorted(set(changes) - EDITABLE_INCIDENT_FIELDS))
        raise ValueError(f"not editable here: {unknown}")

    with transaction.atomic():
        fresh = type(obj)._default_manager.select_for_update().get(pk=obj.pk)
        before = snapshot(fresh, changes)
        for name, value in changes.items():
            setattr(fresh, name, value)
        after = snapshot(fresh, changes)
        diff = {
            name: [before[name], after[name]] for name in changes if before[name] != after[name]
        }
        if diff:
            fresh.save()
        # The caller's instance shows what is stored now, whoever changed it.
        for field in fresh._meta.concrete_fields:
            setattr(obj, field.attname, getattr(fresh, field.attname))
        if not diff:
            return False

        if isinstance(fresh, Incident):
            incident, kind, label = fresh, EntryKind.INCIDENT_UPDATED, "Incident"
            if "restricted" in diff and fresh.restricted:
                keep_on_restricted(actor, fresh)
        else:
            incident, kind, label = fresh.incident, fresh.TIMELINE_KINDS.updated, _label(fresh)
        TimelineEntry.objects.append(
            incident,
            actor,
            kind,
            f"{label} changed: {', '.join(diff)}",
            {"model": obj._meta.model_name, "id": obj.pk, "changes": diff},
        )
    return True


def add(actor: Actor, part: IncidentPart) -> IncidentPart:
    """Save a new part of an incident (participant, resource, objective, task, message)."""
    with transaction.atomic():
        part.save(force_insert=True)
        fields = [f.name for f in part._meta.concrete_fields if f.name not in ("id", "incident")]
        TimelineEntry.objects.append(
            part.incident,
            actor,
            part.TIMELINE_KINDS.added,
            f"{_label(part)} added: {part}",
            {"model": part._meta.model_name, "id": part.pk, "fields": snapshot(part, fields)},
        )
    return part


def remove(actor: Actor, part: IncidentPart) -> None:
    with transaction.atomic():
        incident, pk, description = part.incident, part.pk, str(part)
        part.delete()
        TimelineEntry.objects.append(
            incident,
            actor,
            part.TIMELINE_KINDS.removed,
            f"{_label(part)} removed: {description}",
            {"model": part._meta.model_name, "id": pk},
        )


def keep_on_restricted(actor: Actor, incident: Incident) -> None:
    """Make whoever restricts an incident a participant, so it does not vanish from them."""
    user = actor.user
    if user is None or roles.is_lead(user):
        return
    if not Participant.objects.filter(incident=incident, user=user).exists():
        add(actor, Participant(incident=incident, user=user, role=ParticipantRole.RESPONDER))


def write_entry(
    actor: Actor,
    incident: Incident,
    kind: str,
    summary: str,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEntry:
    """A note or decision a person adds to the timeline, possibly about an earlier moment."""
    if kind not in MANUAL_ENTRY_KINDS:
        raise ValueError(f"people write only {', '.join(MANUAL_ENTRY_KINDS)} entries")
    return TimelineEntry.objects.append(
        incident, actor, kind, summary, data, occurred_at=occurred_at
    )


def flag_missed_acknowledgements(now: datetime | None = None) -> list[str]:
    """Record, once per incident, that nobody acknowledged it within its severity's deadline."""
    now = now or timezone.now()
    overdue = Q()
    for severity, deadline in settings.ACKNOWLEDGEMENT_DEADLINES.items():
        overdue |= Q(severity=severity, reported_at__lt=now - deadline)

    candidates = Incident.objects.filter(
        overdue,
        acknowledged_at__isnull=True,
        acknowledgement_missed_at__isnull=True,
    ).exclude(status=Status.CLOSED)
    actor = Actor.system("acknowledgement-deadline")
    flagged = []
    for pk in candidates.values_list("pk", flat=True).order_by("pk"):
        with transaction.atomic():
            # Re-read under lock: a responder may have acknowledged it a moment ago, or
            # another beat run flagged it already.
            incident = (
                Incident.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, acknowledged_at__isnull=True, acknowledgement_missed_at__isnull=True)
                .first()
            )
            if incident is None:
                continue
            deadline = settings.ACKNOWLEDGEMENT_DEADLINES[incident.severity]
            incident.acknowledgement_missed_at = now
            incident.save(update_fields=["acknowledgement_missed_at"])
            TimelineEntry.objects.append(
                incident,
                actor,
                EntryKind.ACKNOWLEDGEMENT_MISSED,
                f"Not acknowledged within {_minutes(deadline.total_seconds())} "
                f"({Severity(incident.severity).name})",
                {"deadline_minutes": int(deadline.total_seconds() // 60)},
                occurred_at=incident.reported_at + deadline,
            )
        flagged.append(incident.reference)
        logger.warning("incident.acknowledgement_missed incident=%s", incident.reference)
    return flagged


def snapshot(obj: models.Model, fields: Any) -> dict[str, Any]:
    """The named fields' values as they go into timeline data: JSON-safe, relations by id."""
    values = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname) if field.is_relation else getattr(obj, name)  # type: ignore[union-attr]
        values[name] = value.isoformat() if isinstance(value, datetime) else value
    return values


def _label(obj: models.Model) -> str:
    return str(obj._meta.verbose_name).capitalize()


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"
