from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction
from django.utils import timezone

from cases.choices import EntryKind
from irportal.actors import ActorKind

if TYPE_CHECKING:
    from cases.models.incident import Incident
    from irportal.actors import Actor

logger = logging.getLogger(__name__)

KNOWN_KINDS = frozenset(EntryKind.values)

# The hash the first entry of every chain links to.
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class BrokenLink:
    """The first entry at which an incident's chain does not hold, and why."""

    incident_reference: str
    sequence: int
    reason: str

    def __str__(self) -> str:
        return f"{self.incident_reference} entry {self.sequence}: {self.reason}"


@dataclass(frozen=True)
class NewEntry:
    """One entry to append: who, what kind, a line, structured data, and when it happened."""

    actor: Actor
    kind: str
    summary: str
    data: dict[str, Any] | None = None
    occurred_at: datetime | None = None


class TimelineEntryQuerySet(models.QuerySet["TimelineEntry"]):
    def append(
        self,
        incident: Incident,
        actor: Actor,
        kind: str,
        summary: str,
        data: dict[str, Any] | None = None,
        *,
        occurred_at: datetime | None = None,
        opening: bool = False,
    ) -> TimelineEntry:
        """Append an entry to the incident's chain: the one way timeline rows are written.

        Runs inside the caller's transaction when there is one, so the entry commits or
        rolls back with the change it records. Locking the incident row serializes writers
        on one incident; each links to the hash of the entry before it. `opening` is for
        the first entry of an incident inserted in the same transaction: no one else can
        see it yet, so there is nothing to lock and no chain to read.
        """
        new = NewEntry(actor, kind, summary, data, occurred_at)
        return self.append_many(incident, [new], opening=opening)[0]

    def append_many(
        self, incident: Incident, new: list[NewEntry], *, opening: bool = False
    ) -> list[TimelineEntry]:
        """Append several entries to one incident's chain, under one lock, in one insert."""
        unknown = [entry.kind for entry in new if entry.kind not in KNOWN_KINDS]
        if unknown:
            raise ValueError(f"unknown timeline entry kind {unknown[0]!r}")

        with transaction.atomic(savepoint=False):
            head = None if opening else self._lock_chain_head(incident)
            sequence, previous_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
            recorded_at = timezone.now()
            entries: list[TimelineEntry] = []
            for offset, item in enumerate(new):
                entry = TimelineEntry(
                    incident=incident,
                    sequence=sequence + offset,
                    recorded_at=recorded_at,
                    occurred_at=item.occurred_at or recorded_at,
                    actor_kind=item.actor.kind,
                    actor_user=item.actor.user,
                    actor_name=item.actor.name,
                    kind=item.kind,
                    summary=item.summary[:300],
                    data=_json_safe(item.data or {}),
                    previous_hash=previous_hash,
                )
                entry.hash = previous_hash = entry.compute_hash(incident.reference)
                entries.append(entry)
            if len(entries) == 1:
                entries[0].save(force_insert=True)
            else:
                TimelineEntry.objects.bulk_create(entries)

        for entry in entries:
            logger.debug(
                "timeline.appended incident=%s sequence=%s kind=%s actor=%s",
                incident.reference,
                entry.sequence,
                entry.kind,
                entry.actor_name,
            )
        return entries

    def _lock_chain_head(self, incident: Incident) -> tuple[int, str] | None:
        """Lock the incident's row, then read the last link of its chain.

        Two statements, not one: the read must take its snapshot after the lock is granted,
        or it could miss an entry another writer committed while this one waited. Plain SQL
        because this runs for every entry and the ORM's overhead here is most of the cost.
        """
        connection = connections[self.db]
        # Table names come from the models, never from input.
        lock = f"SELECT 1 FROM {incident._meta.db_table} WHERE id = %s FOR UPDATE"  # noqa: S608
        last_link = (
            f"SELECT sequence, hash FROM {self.model._meta.db_table} "  # noqa: S608
            "WHERE incident_id = %s ORDER BY sequence DESC LIMIT 1"
        )
        with connection.cursor() as cursor:
            # SQLite has no row locks; its transactions take the write lock when they begin
            # (transaction_mode IMMEDIATE in settings), which serializes writers as well.
            if connection.features.has_select_for_update:
                cursor.execute(lock, [incident.pk])
            cursor.execute(last_link, [incident.pk])
            row = cursor.fetchone()
        return (row[0], row[1]) if row else None

    def verify_chain(self, incident: Incident) -> BrokenLink | None:
        """Recompute the incident's chain; None when it holds, else its first broken link."""
        entries = (
            self.filter(incident_id=incident.pk)
            .order_by("sequence")
            .only(*TimelineEntry.HASHED_FIELDS, "hash")
        )
        return _first_broken_link(incident.reference, entries.iterator(chunk_size=2000))


def _first_broken_link(reference: str, entries: Iterable[TimelineEntry]) -> BrokenLink | None:
    expected_sequence, expected_previous = 1, GENESIS_HASH
    for entry in entries:
        if entry.sequence != expected_sequence:
            return BrokenLink(reference, entry.sequence, f"expected entry {expected_sequence}")
        if entry.previous_hash != expected_previous:
            return BrokenLink(reference, entry.sequence, "does not link to the entry before it")
        if entry.compute_hash(reference) != entry.hash:
            return BrokenLink(reference, entry.sequence, "content does not match its hash")
        expected_sequence, expected_previous = entry.sequence + 1, entry.hash
    return None


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    """Data as it will read back from the database, so the hash is over what is stored."""
    safe: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return safe


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class TimelineEntry(models.Model):
    """One thing that happened in an incident: append-only and hash-chained.

    The database refuses UPDATE and DELETE on this table (see the migration that adds the
    triggers); `verify_chain` finds any change made around them.
    """

    HASHED_FIELDS = (
        "sequence",
        "recorded_at",
        "occurred_at",
        "actor_kind",
        "actor_user_id",
        "actor_name",
        "kind",
        "summary",
        "data",
        "previous_hash",
    )

    incident = models.ForeignKey(
        "cases.Incident", on_delete=models.PROTECT, related_name="timeline"
    )
    sequence = models.PositiveIntegerField(help_text="Order of recording within the incident.")
    recorded_at = models.DateTimeField()
    occurred_at = models.DateTimeField(help_text="When it happened; may precede recording.")
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="timeline_entries",
    )
    actor_name = models.CharField(max_length=150)
    kind = models.CharField(max_length=40, choices=EntryKind.choices)
    summary = models.CharField(max_length=300)
    data = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = TimelineEntryQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "sequence"]
        verbose_name_plural = "timeline entries"
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "sequence"], name="timeline_one_entry_per_sequence"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind}: {self.summary}"

    def canonical_bytes(self, incident_reference: str) -> bytes:
        """The entry's content in one fixed encoding: sorted keys, UTC microseconds."""
        content = {
            "incident": incident_reference,
            "sequence": self.sequence,
            "recorded_at": _timestamp(self.recorded_at),
            "occurred_at": _timestamp(self.occurred_at),
            "actor": {
                "kind": self.actor_kind,
                "user_id": self.actor_user_id,
                "name": self.actor_name,
            },
            "kind": self.kind,
            "summary": self.summary,
            "data": self.data,
            "previous_hash": self.previous_hash,
        }
        return json.dumps(
            content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def compute_hash(self, incident_reference: str) -> str:
        return hashlib.sha256(self.canonical_bytes(incident_reference)).hexdigest()
