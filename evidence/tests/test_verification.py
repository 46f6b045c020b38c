"""Verification runs (`verify_evidence`, the periodic task) over every incident's items:
each item is flagged for what was found, and one item that cannot be read, or checked at
all, is reported for itself while the others are still checked."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from cases.choices import EntryKind
from cases.models import TimelineEntry
from evidence import services, tasks
from evidence.choices import CustodyAction, Integrity
from evidence.stores import LocalStore
from evidence.tests.test_api import add_item, corrupt
from evidence.tests.test_s3_store import bucket as bucket
from evidence.tests.test_s3_store import security_account as security_account
from evidence.tests.test_s3_store import upload
from playbooks.models import CloudAccount

pytestmark = pytest.mark.django_db


def test_the_periodic_task_verifies_every_incidents_items_and_flags_a_changed_one(
    make_incident, responder
):
    first, second = make_incident(), make_incident(title="Leaked access key")
    items = [add_item(first, responder), add_item(second, responder), add_item(second, responder)]
    corrupt(items[1])

    assert tasks.verify_all.apply().get() == 1

    for item in items:
        item.refresh_from_db()
        assert item.verified_at is not None
    assert [item.integrity for item in items] == [
        Integrity.INTACT,
        Integrity.MISMATCH,
        Integrity.INTACT,
    ]
    assert items[1].custody.filter(action=CustodyAction.INTEGRITY_FAILED).exists()
    assert TimelineEntry.objects.filter(
        incident=second, kind=EntryKind.EVIDENCE_INTEGRITY_FAILED
    ).exists()
    assert not TimelineEntry.objects.filter(
        incident=first, kind=EntryKind.EVIDENCE_INTEGRITY_FAILED
    ).exists()


def disk_error_reading(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading `key` from the local store fails part-way with an I/O error."""
    read = LocalStore.read

    def failing(self: LocalStore, wanted: str, **where: Any) -> Iterator[bytes]:
        if wanted != key:
            return read(self, wanted, **where)
        return breaks_after_one_chunk()

    def breaks_after_one_chunk() -> Iterator[bytes]:
        yield b"the first chunk"
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(LocalStore, "read", failing)


def test_an_item_that_cannot_be_read_is_reported_and_the_run_goes_on(
    incident, responder, monkeypatch
):
    unreadable, intact, changed = (add_item(incident, responder) for _ in range(3))
    corrupt(changed)
    disk_error_reading(unreadable.key, monkeypatch)

    with pytest.raises(CommandError) as failed:
        call_command("verify_evidence")

    assert str(failed.value).startswith("2 of 3 item(s) failed")
    assert f"#{unreadable.pk} disk.img: could not be read" in str(failed.value)
    assert f"#{changed.pk} disk.img: hash mismatch" in str(failed.value)
    for item in (unreadable, intact, changed):
        item.refresh_from_db()
    assert (unreadable.integrity, intact.integrity) == (Integrity.UNREADABLE, Integrity.INTACT)
    recorded = unreadable.custody.get(action=CustodyAction.INTEGRITY_FAILED)
    assert "OSError" in recorded.details["detail"]


def test_an_item_that_cannot_be_checked_at_all_does_not_stop_the_others(
    incident, responder, monkeypatch
):
    broken, fine = add_item(incident, responder), add_item(incident, responder)
    verify = services.verify

    def crashes_on_broken(item: Any, *args: Any) -> str:
        if item.pk == broken.pk:
            raise RuntimeError("database went away")
        return verify(item, *args)

    monkeypatch.setattr(services, "verify", crashes_on_broken)

    assert tasks.verify_all() == 1
    with pytest.raises(CommandError, match=rf"#{broken.pk} .*could not be checked \(RuntimeError"):
        call_command("verify_evidence")
    fine.refresh_from_db()
    assert fine.custody.filter(action=CustodyAction.VERIFIED).count() == 2


def test_access_denied_is_could_not_be_read_not_missing(bucket, incident, responder):
    """S3 answers AccessDenied for a key it would not even say is missing. moto enforces
    no bucket policy here, so the denial comes from reaching the bucket from another
    account (the fixture turns moto's cross-account access off): as if the security
    account's role had lost access to the bucket."""
    item = upload(incident, responder, os.urandom(1000))
    assert services.verify(item) == Integrity.INTACT
    CloudAccount.objects.filter(is_security_account=True).update(
        role_arn="arn:aws:iam::111122223333:role/ir-portal-evidence"
    )

    assert services.verify(item) == Integrity.UNREADABLE

    item.refresh_from_db()
    assert item.integrity == Integrity.UNREADABLE
    recorded = item.custody.get(action=CustodyAction.INTEGRITY_FAILED)
    assert "AccessDenied" in recorded.details["detail"]
    with pytest.raises(CommandError, match=f"#{item.pk} memory.lime: could not be read"):
        call_command("verify_evidence")
