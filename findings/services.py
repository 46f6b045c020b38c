"""From received events to stored findings, and from findings to incidents."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import JSONField, Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import serializers

from cases import services as cases
from cases.choices import EntryKind, Severity, Status
from cases.models import AffectedResource, Incident, Objective, Participant, TimelineEntry
from cases.models.timeline import NewEntry
from findings.choices import Decision, FindingSeverity, Outcome, RuleEffect
from findings.models import Finding, QuarantinedEvent, TriageRule
from findings.parsing import ParsedFinding, Unparseable, parse_event
from irportal.actors import Actor, ActorKind
from irportal.errors import StateConflict
from playbooks import services as playbooks
from playbooks.choices import RunStatus
from playbooks.library import problems_in
from playbooks.models import Playbook, PlaybookRun

logger = logging.getLogger(__name__)

INCIDENT_SEVERITY = {
    FindingSeverity.CRITICAL: Severity.SEV1,
    FindingSeverity.HIGH: Severity.SEV2,
    FindingSeverity.MEDIUM: Severity.SEV3,
    FindingSeverity.LOW: Severity.SEV4,
    FindingSeverity.INFORMATIONAL: Severity.SEV4,
}

# Fields a later version of a finding may change.
UPDATABLE = (
    "title",
    "description",
    "severity",
    "severity_score",
    "resources",
    "last_seen",
    "count",
    "provider_updated_at",
    "raw",
)


@dataclass
class FindingResult:
    outcome: Outcome
    finding: Finding

    def as_dict(self) -> dict[str, Any]:
        incident = self.finding.incident
        return {
            "outcome": self.outcome,
            "finding": self.finding.pk,
            "source": self.finding.source,
            "provider_id": self.finding.provider_id,
            "decision": self.finding.decision,
            "incident": incident.reference if incident else None,
        }


@dataclass
class EventResult:
    """What became of one received event: its findings, or why it was refused."""

    findings: list[FindingResult] = field(default_factory=list)
    error: str = ""
    quarantine_id: int | None = None

    @property
    def rejected(self) -> bool:
        return bool(self.error)

    def as_dict(self) -> dict[str, Any]:
        if self.rejected:
            return {
                "outcome": Outcome.REJECTED,
                "error": self.error,
                "quarantine": self.quarantine_id,
            }
        return {
            "outcome": _overall(self.findings),
            "findings": [f.as_dict() for f in self.findings],
        }


def _overall(results: Sequence[FindingResult]) -> str:
    outcomes = {r.outcome for r in results}
    for outcome in (Outcome.NEW, Outcome.UPDATED):
        if outcome in outcomes:
            return outcome
    return Outcome.DUPLICATE


def ingest(actor: Actor, events: Sequence[Any]) -> list[EventResult]:
    """Store what `events` contain, once each, and triage what is new.

    An event that cannot be parsed is quarantined, whole, and the others go on. The batch
    is written in one transaction: either all of it is kept or, on a database failure,
    none of it. Two requests racing to insert the same new finding meet the unique
    constraint; the loser runs again and finds the winner's row.
    """
    parsed: list[tuple[int, list[ParsedFinding]]] = []
    results = [EventResult() for _ in events]
    for index, event in enumerate(events):
        try:
            parsed.append((index, parse_event(event)))
        except Unparseable as refusal:
            results[index].error = str(refusal)

    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction.atomic():
                _quarantine(actor, events, results)
                _store(actor, parsed, results)
            break
        except (IntegrityError, OperationalError) as error:
            if attempt == ATTEMPTS or not _worth_retrying(error):
                raise
            logger.warning("findings.retry attempt=%s error=%s actor=%s", attempt, error, actor)
            for result in results:
                result.findings.clear()
    return results


ATTEMPTS = 4


def _worth_retrying(error: Exception) -> bool:
    """A lost race (unique violation), a deadlock or a serialization failure: the same
    work succeeds when run again."""
    if isinstance(error, IntegrityError):
        return True
    return getattr(error.__cause__, "sqlstate", None) in ("40P01", "40001")


def _quarantine(actor: Actor, events: Sequence[Any], results: list[EventResult]) -> None:
    rejected = [(i, r) for i, r in enumerate(results) if r.rejected]
    if not rejected:
        return
    kept = QuarantinedEvent.objects.bulk_create(
        QuarantinedEvent(received_by=str(actor), payload=_as_text(events[i]), error=r.error[:1000])
        for i, r in rejected
    )
    for (_, result), row in zip(rejected, kept, strict=True):
        result.quarantine_id = row.pk
    logger.warning("findings.quarantined count=%s actor=%s", len(kept), actor)


def resubmit(actor: Actor, kept: QuarantinedEvent, payload: Any) -> EventResult:
    """Ingest a quarantined payload again; mark it resubmitted if it now parses."""
    events = payload if isinstance(payload, list) else [payload]
    try:
        for event in events:
            parse_event(event)
    except Unparseable as refusal:
        kept.error = str(refusal)[:1000]
        kept.save(update_fields=["error"])
        return EventResult(error=str(refusal))

    with transaction.atomic():
        results = ingest(actor, events)
        kept.resubmitted_at, kept.resubmitted_by = timezone.now(), actor.user
        kept.save(update_fields=["resubmitted_at", "resubmitted_by"])
    return EventResult(findings=[f for r in results for f in r.findings])


def quarantine_raw(actor: Actor, body: str, error: str) -> QuarantinedEvent:
    """Keep a body that was not even JSON."""
    # PostgreSQL's text columns take no NUL character: the one change made to what was sent.
    payload = body.replace("\x00", "\ufffd")
    return QuarantinedEvent.objects.create(
        received_by=str(actor), payload=payload, error=error[:1000]
    )


def _store(
    actor: Actor, parsed: list[tuple[int, list[ParsedFinding]]], results: list[EventResult]
) -> None:
    # The same finding may come twice in one batch: the newest version counts.
    latest: dict[tuple[str, str], ParsedFinding] = {}
    for _, findings in parsed:
        for finding in findings:
            key = (finding.source, finding.provider_id)
            if key not in latest or _newer(finding, latest[key]):
                latest[key] = finding

    stored = _existing(latest)
    now = timezone.now()
    outcome_by_key: dict[tuple[str, str], Outcome] = {}
    changed, created = [], []
    for key, finding in latest.items():
        if key in stored:
            row = stored[key]
            if row.is_newer(finding):
                _apply(row, finding, now)
                changed.append(row)
                outcome_by_key[key] = Outcome.UPDATED
            else:
                outcome_by_key[key] = Outcome.DUPLICATE
        else:
            row = _new_row(finding, now)
            created.append(row)
            stored[key] = row
            outcome_by_key[key] = Outcome.NEW

    # Triage looks again at findings still waiting for a decision: one that has grown more
    # severe may now match a rule that it did not match before.
    waiting = [row for row in changed if row.decision == Decision.UNTRIAGED]
    if created or waiting:
        triage([*created, *waiting], enabled_rules())

    acting = [
        row
        for row in [*created, *waiting]
        if row.rule and row.decision in (Decision.OPENED, Decision.ATTACHED)
    ]
    # Findings that join or attach to an existing incident are written with it at once.
    arriving = _route_to_existing(changed, acting)
    if changed:
        _update_rows(changed)
    if created:
        _insert_rows(created)
    _record_arrivals(actor, changed, arriving)

    # Openings last, one at a time: a finding may join an incident opened by an earlier
    # one of the same batch.
    for row in acting:
        if row not in arriving:
            _act_on(row)
    # Playbooks once the findings are in their incidents: a run draws its inputs from them.
    # Asked in memory first, so batches that no playbook rule decided cost nothing more.
    if any(row.rule and row.rule.playbook for row in acting):
        _start_playbooks(acting)
    if created or changed:
        logger.info("findings.stored new=%s updated=%s actor=%s", len(created), len(changed), actor)

    for index, findings in parsed:
        for finding in findings:
            key = (finding.source, finding.provider_id)
            # The version that was kept has the outcome; other copies in the batch are
            # duplicates, whether they came before or after it.
            outcome = outcome_by_key[key] if finding is latest[key] else Outcome.DUPLICATE
            results[index].findings.append(FindingResult(outcome, stored[key]))


def _existing(latest: dict[tuple[str, str], ParsedFinding]) -> dict[tuple[str, str], Finding]:
    by_source: dict[str, list[str]] = {}
    for source, provider_id in latest:
        by_source.setdefault(source, []).append(provider_id)
    condition = Q()
    for source, ids in by_source.items():
        condition |= Q(source=source, provider_id__in=ids)
    if not by_source:
        return {}
    # Locked in id order, so two batches re-sending the same findings wait for each other
    # instead of deadlocking.
    rows = list(Finding.objects.select_for_update().filter(condition).order_by("pk"))
    incident_ids = {row.incident_id for row in rows if row.incident_id}
    if incident_ids:
        incidents = Incident.objects.in_bulk(incident_ids)
        for row in rows:
            if row.incident_id:
                row.incident = incidents[row.incident_id]
    return {(row.source, row.provider_id): row for row in rows}


CHANGEABLE = (
    *UPDATABLE,
    "updated_at",
    "revisions",
    "decision",
    "decision_reason",
    "rule",
    "incident",
)


def _insert_rows(rows: list[Finding]) -> None:
    """Insert new findings and give them their ids.

    On PostgreSQL, one prepared INSERT per row in psycopg's pipeline: Django's bulk_create
    sends the rows as arrays, and escaping each raw payload into an array literal cost
    three times as much as the insert itself.
    """
    if connection.vendor != "postgresql":
        Finding.objects.bulk_create(rows)
        return
    fields = [f for f in Finding._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(_column(f) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {Finding._meta.db_table} ({columns}) VALUES ({placeholders}) RETURNING id"  # noqa: S608
    values = [[_prepared(f, row) for f in fields] for row in rows]
    with connection.cursor() as cursor:
        psycopg_cursor = cursor.cursor
        psycopg_cursor.executemany(sql, values, returning=True)
        ids = []
        while True:
            ids.append(psycopg_cursor.fetchone()[0])
            if not psycopg_cursor.nextset():
                break
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding, row._state.db = False, connection.alias


def _update_rows(rows: list[Finding]) -> None:
    """Write later versions of findings: one UPDATE per row, sent together.

    bulk_update builds a CASE over every row for each column, raw payload included, which
    cost more than the rows' own updates.
    """
    fields = [f for f in Finding._meta.concrete_fields if f.name in CHANGEABLE]
    assignments = ", ".join(f"{_column(f)} = %s" for f in fields)
    sql = f"UPDATE {Finding._meta.db_table} SET {assignments} WHERE id = %s"  # noqa: S608
    values = [[*(_prepared(f, row) for f in fields), row.pk] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def _prepared(field: Any, row: Finding) -> Any:
    """A column's value as psycopg takes it. Only JSON needs Django's preparation (an
    adapter); the other values already have their database types, and preparing every
    one cost a tenth of a batch."""
    value = getattr(row, field.attname)
    if isinstance(field, JSONField):
        return field.get_db_prep_save(value, connection)
    return value


def _column(field: Any) -> str:
    return connection.ops.quote_name(field.column)


def _route_to_existing(changed: list[Finding], acting: list[Finding]) -> list[Finding]:
    """Send the acting findings that have an existing incident to go to there, and lock,
    in id order, every existing incident this batch will write to.

    Batches that touch the same incidents take their locks in the same order and cannot
    deadlock. Returns the findings routed; the others open incidents afterwards.
    """
    routed = []
    for row in acting:
        assert row.rule is not None
        if row.decision == Decision.ATTACHED and row.rule.target_incident:
            row.incident = row.rule.target_incident
            routed.append(row)
        elif row.decision == Decision.OPENED and (
            covering := covering_incident(row, row.rule.incident_category)
        ):
            row.incident = covering
            row.decision = Decision.JOINED
            row.decision_reason = f"joined {covering.reference}: same resource, related type"
            routed.append(row)

    touched = {row.incident_id for row in [*changed, *routed] if row.incident_id}
    if touched:
        list(
            Incident.objects.select_for_update().filter(pk__in=touched).order_by("pk").values("pk")
        )
    return routed


def _record_arrivals(actor: Actor, changed: list[Finding], arriving: list[Finding]) -> None:
    """Each incident's timeline: findings seen again, findings that joined, in one append."""
    by_incident: dict[int, tuple[Incident, list[NewEntry], list[Finding]]] = {}
    for row in changed:
        if row.incident_id and row not in arriving:
            assert row.incident is not None
            _, entries, _ = by_incident.setdefault(row.incident_id, (row.incident, [], []))
            entries.append(_update_entry(actor, row))
    for row in arriving:
        assert row.incident is not None and row.rule is not None
        _, entries, joined = by_incident.setdefault(row.incident.pk, (row.incident, [], []))
        how = (
            f"attached by rule {row.rule.name}"
            if row.decision == Decision.ATTACHED
            else "joined: same resource and related type, within the window"
        )
        entries.append(_arrival_entry(rule_actor(row.rule), row, how))
        joined.append(row)

    for incident, entries, joined in by_incident.values():
        TimelineEntry.objects.append_many(incident, entries)
        # Time to detect runs from the earliest sign of the activity.
        earliest = min((row.first_seen for row in joined), default=None)
        if earliest and earliest < incident.detected_at:
            cases.change(rule_actor(joined[0].rule), incident, {"detected_at": earliest})  # type: ignore[arg-type]
        for row in joined:
            _log_triaged(incident, row, rule_actor(row.rule))  # type: ignore[arg-type]


_rules_cache: tuple[float, list[TriageRule]] | None = None
RULES_CACHE_SECONDS = 5.0


def enabled_rules() -> list[TriageRule]:
    """The enabled rules in order, read at most every few seconds per process.

    Every request triages, and reading the rules was a fifth of a single event's cost. A
    rule saved in this process clears the cache at once; other processes see it within
    RULES_CACHE_SECONDS.
    """
    global _rules_cache
    now = time.monotonic()
    if _rules_cache is None or now - _rules_cache[0] > RULES_CACHE_SECONDS:
        rules = TriageRule.objects.filter(enabled=True).select_related(
            "target_incident", "commander"
        )
        _rules_cache = (now, list(rules))
    return _rules_cache[1]


@receiver([post_save, post_delete], sender=TriageRule)
def forget_rules(**kwargs: Any) -> None:
    global _rules_cache
    _rules_cache = None


def _newer(a: ParsedFinding, b: ParsedFinding) -> bool:
    return (a.count, a.provider_updated_at or a.last_seen) > (
        b.count,
        b.provider_updated_at or b.last_seen,
    )


def _new_row(finding: ParsedFinding, now: datetime) -> Finding:
    return Finding(
        source=finding.source,
        provider_id=finding.provider_id,
        type=finding.type,
        title=finding.title,
        description=finding.description,
        severity=finding.severity,
        severity_score=finding.severity_score,
        account_id=finding.account_id,
        region=finding.region,
        resources=finding.resources,
        primary_resource=finding.primary_resource,
        first_seen=finding.first_seen,
        last_seen=finding.last_seen,
        count=finding.count,
        provider_updated_at=finding.provider_updated_at,
        raw=finding.raw,
        received_at=now,
        updated_at=now,
    )


def _apply(row: Finding, finding: ParsedFinding, now: datetime) -> None:
    for name in UPDATABLE:
        setattr(row, name, getattr(finding, name))
    row.updated_at = now
    row.revisions += 1


def _update_entry(actor: Actor, row: Finding) -> NewEntry:
    return NewEntry(
        actor,
        EntryKind.FINDING_UPDATED,
        f"Finding seen again: {row.type} (count {row.count})",
        {"finding": row.pk, "count": row.count, "last_seen": row.last_seen.isoformat()},
        occurred_at=row.last_seen,
    )


def _arrival_entry(actor: Actor, finding: Finding, how: str) -> NewEntry:
    return NewEntry(
        actor,
        EntryKind.FINDING_ADDED,
        f"Finding {finding.type} {how}",
        {"finding": finding.pk, "source": finding.source, "provider_id": finding.provider_id},
        occurred_at=finding.first_seen,
    )


def triage(findings: Iterable[Finding], rules: Sequence[TriageRule]) -> None:
    """Decide, in memory, what each new finding's rules say. Incidents are touched later."""
    for finding in findings:
        for rule in rules:
            if not rule.matches(finding):
                continue
            # The first match decides, unless it lets matching go on: then a later match
            # overrules it (a finding has one decision, one rule, one incident).
            finding.rule = rule
            finding.decision, finding.decision_reason = _decision(rule)
            if not rule.continue_matching:
                break


def _decision(rule: TriageRule) -> tuple[Decision, str]:
    if rule.effect == RuleEffect.SUPPRESS:
        return Decision.SUPPRESSED, rule.suppress_reason or f"suppressed by {rule.name}"
    if rule.effect == RuleEffect.ATTACH:
        return Decision.ATTACHED, f"attached by {rule.name}"
    return Decision.OPENED, f"opened by {rule.name}"


def rule_actor(rule: TriageRule) -> Actor:
    return Actor(kind=ActorKind.RULE, name=rule.name)


def _act_on(finding: Finding) -> None:
    """Carry out an incident-touching decision for a finding that is already stored."""
    rule = finding.rule
    assert rule is not None
    actor = rule_actor(rule)
    if finding.decision == Decision.ATTACHED:
        incident = rule.target_incident
        if incident is None:
            finding.decision, finding.decision_reason = (
                Decision.UNTRIAGED,
                f"{rule.name} names no incident",
            )
            finding.save(update_fields=["decision", "decision_reason"])
            return
        _attach(actor, finding, incident, f"attached by rule {rule.name}")
        return

    covering = covering_incident(finding, rule.incident_category)
    if covering:
        finding.decision = Decision.JOINED
        finding.decision_reason = f"joined {covering.reference}: same resource, related type"
        _attach(
            actor, finding, covering, "joined: same resource and related type, within the window"
        )
    else:
        incident = open_incident_for(
            actor,
            finding,
            severity=rule.incident_severity,
            category=rule.incident_category,
            restricted=rule.restricted,
            commander=rule.commander,
            objectives=rule.objectives,
        )
        _attach(actor, finding, incident, f"opened by rule {rule.name}")


# The decisions that put a finding into an incident, where its rule's playbook can run.
INTO_INCIDENT = (Decision.OPENED, Decision.JOINED, Decision.ATTACHED)


def _start_playbooks(findings: list[Finding]) -> None:
    """Start each rule's playbook once on each incident its findings went to.

    Once per incident and playbook: a run that is not cancelled, or an earlier refusal, is
    enough. Every incident here is locked by this transaction since its findings' timeline
    entries were written, so two batches cannot both find nothing and both start a run.
    """
    wanted: dict[tuple[int, str], TriageRule] = {}
    for finding in findings:
        rule = finding.rule
        if rule and rule.playbook and finding.incident_id and finding.decision in INTO_INCIDENT:
            wanted.setdefault((finding.incident_id, rule.playbook), rule)
    if not wanted:
        return
    for key in _playbooks_tried(set(wanted)):
        wanted.pop(key, None)
    if not wanted:
        return

    # Read again rather than taken from the rules cache (an attaching rule's incident) or
    # from before the lock: a run must not start on an incident closed meanwhile.
    incidents = Incident.objects.in_bulk({incident_id for incident_id, _ in wanted})
    newest: dict[str, Playbook] = {}
    enabled = Playbook.objects.filter(slug__in={slug for _, slug in wanted}, enabled=True)
    for playbook in enabled.order_by("slug", "-version"):
        newest.setdefault(playbook.slug, playbook)
    for (incident_id, slug), rule in wanted.items():
        _start_playbook(rule, incidents[incident_id], newest.get(slug))


def _playbooks_tried(wanted: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """The (incident, playbook) pairs that have a live run or were refused before."""
    incident_ids = {incident_id for incident_id, _ in wanted}
    slugs = {slug for _, slug in wanted}
    runs = (
        PlaybookRun.objects.filter(incident_id__in=incident_ids, playbook__slug__in=slugs)
        .exclude(status=RunStatus.CANCELLED)
        .values_list("incident_id", "playbook__slug")
    )
    # A refusal is not tried again by every later finding: each try reads all the
    # incident's findings and would write the same entry again. A person starts the
    # playbook with the input it lacked.
    refusals = TimelineEntry.objects.filter(
        incident_id__in=incident_ids, kind=EntryKind.PLAYBOOK_NOT_STARTED
    ).values_list("incident_id", "data__playbook")
    return {*runs, *refusals} & wanted


def _start_playbook(rule: TriageRule, incident: Incident, playbook: Playbook | None) -> None:
    """Start the run, or say on the timeline why it could not start: the finding is kept
    either way."""
    actor = rule_actor(rule)
    if playbook is None:
        _not_started(actor, incident, rule, None, "it has no enabled version")
        return
    try:
        # A savepoint: a refused or failed start leaves the batch's own writes intact.
        with transaction.atomic():
            playbooks.start_run(actor, incident, playbook, rule=rule, dry_run=rule.playbook_dry_run)
    except serializers.ValidationError as refusal:
        reason = "; ".join(f"{where}: {what}" for where, what in problems_in(refusal.detail))
        _not_started(actor, incident, rule, playbook, reason)
    except StateConflict as refusal:
        _not_started(actor, incident, rule, playbook, str(refusal))
    except DatabaseError:
        raise  # the batch is tried again whole, see `ingest`
    except Exception:
        # A fault in the engine must not cost the finding: the detector does not send it
        # again once this request fails.
        logger.exception(
            "findings.playbook_crashed incident=%s playbook=%s rule=%s",
            incident.reference,
            playbook.slug,
            rule.pk,
        )
        _not_started(actor, incident, rule, playbook, "it failed to start (see the logs)")


def _not_started(
    actor: Actor, incident: Incident, rule: TriageRule, playbook: Playbook | None, reason: str
) -> None:
    TimelineEntry.objects.append(
        incident,
        actor,
        EntryKind.PLAYBOOK_NOT_STARTED,
        f"Playbook {playbook.name if playbook else rule.playbook} not started: {reason}",
        {
            "playbook": rule.playbook,
            "version": playbook.version if playbook else None,
            "rule": rule.name,
            "reason": reason,
        },
    )
    logger.warning(
        "findings.playbook_not_started incident=%s playbook=%s rule=%s reason=%s",
        incident.reference,
        rule.playbook,
        rule.pk,
        reason,
    )


def triage_by_hand(
    actor: Actor,
    finding: Finding,
    decision: str,
    *,
    incident: Incident | None = None,
    reason: str = "",
    severity: str = "",
    category: str = "other",
) -> Finding:
    """A person decides for a finding that no rule took into an incident: open an
    incident for it, attach it to one, or suppress it as benign."""
    with transaction.atomic():
        finding = Finding.objects.select_for_update().get(pk=finding.pk)
        if finding.incident_id:
            raise StateConflict(f"this finding is part of {finding.incident} already")
        finding.rule = None
        finding.decision = decision
        if decision == Decision.SUPPRESSED:
            finding.decision_reason = f"suppressed by {actor.name}: {reason}"
            finding.save(update_fields=["decision", "decision_reason", "rule"])
        elif decision == Decision.ATTACHED and incident is not None:
            finding.decision_reason = f"attached by {actor.name}"
            _attach(actor, finding, incident, f"attached by {actor.name}")
        elif decision == Decision.OPENED:
            finding.decision_reason = f"opened by {actor.name}"
            opened = open_incident_for(actor, finding, severity=severity, category=category)
            _attach(actor, finding, opened, f"opened by {actor.name}")
        else:
            raise ValueError(f"cannot decide {decision!r} by hand")
        finding.save(update_fields=["rule"])
    return finding


def covering_incident(finding: Finding, category: str) -> Incident | None:
    """An open incident about the same resource, of the same category, active recently."""
    if not finding.primary_resource:
        return None
    since = finding.first_seen - settings.FINDING_GROUPING_WINDOW
    identifiers = {r["id"] for r in finding.resources} | {finding.primary_resource}
    # One resource row must match both the name and the account: names such as an IAM
    # user's are unique only within an account. Plain SQL: this runs for every finding
    # that would open an incident, and building it through the ORM cost fifty times what
    # the database spent answering it.
    names = sorted(identifiers)
    moment = connection.ops.adapt_datetimefield_value(since)
    found = Incident.objects.raw(
        f"""
        SELECT i.* FROM {Incident._meta.db_table} i
        WHERE i.status <> %s AND i.category = %s
          AND EXISTS (
            SELECT 1 FROM {AffectedResource._meta.db_table} r
            WHERE r.incident_id = i.id AND r.account_id = %s
              AND r.identifier IN ({", ".join(["%s"] * len(names))}))
          AND (i.reported_at >= %s OR EXISTS (
            SELECT 1 FROM {Finding._meta.db_table} f
            WHERE f.incident_id = i.id AND f.last_seen >= %s))
        ORDER BY i.reported_at DESC
        LIMIT 1
        """,  # noqa: S608 - table names from the models; every value is a parameter
        [Status.CLOSED, category, finding.account_id, *names, moment, moment],
    )
    return next(iter(found), None)


def open_incident_for(
    actor: Actor,
    finding: Finding,
    *,
    severity: str = "",
    category: str = "other",
    restricted: bool = False,
    commander: Any = None,
    objectives: Sequence[str] = (),
) -> Incident:
    """An incident about `finding`, with its resources; severity defaults from the finding."""
    now = timezone.now()
    incident = cases.open_incident(
        actor,
        title=finding.title[:200],
        summary=finding.description[:5000],
        severity=severity or INCIDENT_SEVERITY[FindingSeverity(finding.severity)],
        category=category,
        restricted=restricted,
        detected_at=min(finding.first_seen, now),
        reported_at=now,
    )
    for resource in finding.resources:
        cases.add(
            actor,
            AffectedResource(
                incident=incident,
                account_id=finding.account_id,
                region=resource.get("region") or finding.region,
                identifier=resource["id"],
                resource_type=resource.get("type", ""),
                tags=resource.get("tags") or {},
            ),
        )
    if commander:
        cases.add(actor, Participant(incident=incident, user=commander, role="commander"))
    for kind in objectives:
        cases.add(actor, Objective(incident=incident, kind=kind))
    return incident


def _attach(actor: Actor, finding: Finding, incident: Incident, why: str) -> None:
    finding.incident = incident
    finding.save(update_fields=["incident", "decision", "decision_reason"])
    TimelineEntry.objects.append_many(incident, [_arrival_entry(actor, finding, why)])
    # Time to detect runs from the earliest sign of the activity.
    if finding.first_seen < incident.detected_at:
        cases.change(actor, incident, {"detected_at": finding.first_seen})
    _log_triaged(incident, finding, actor)


def _log_triaged(incident: Incident, finding: Finding, actor: Actor) -> None:
    logger.info(
        "finding.triaged incident=%s finding=%s decision=%s actor=%s",
        incident.reference,
        finding.pk,
        finding.decision,
        actor,
    )


def _as_text(event: Any) -> str:
    # Every event here was read from JSON, a string too: written back as JSON, it is what
    # was received, and a resubmission reads it as it was first read.
    return json.dumps(event, ensure_ascii=False, default=str)
