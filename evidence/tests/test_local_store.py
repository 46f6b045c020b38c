"""Evidence in the local store: hashed on the way in, read-only, verified, kept."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings

from evidence import services
from evidence.choices import CustodyAction, Integrity
from evidence.models import EvidenceItem
from evidence.stores import LocalStore
from irportal.actors import Actor
from irportal.errors import StateConflict

pytestmark = pytest.mark.django_db


def chunks(data: bytes, size: int = 1000):
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def item(incident, responder):
    data = os.urandom(10_000)
    placement = services.placement_for(incident, "disk.img")
    made = services.upload(Actor.for_user(responder), incident, chunks(data), placement)
    made.data = data
    return made


def stored_path(item) -> Path:
    return Path(settings.EVIDENCE_LOCAL_DIR) / item.key


def test_an_upload_is_hashed_and_stored_read_only(item):
    assert item.sha256 == hashlib.sha256(item.data).hexdigest()
    assert item.size == len(item.data)
    path = stored_path(item)
    assert path.read_bytes() == item.data
    assert not path.stat().st_mode & stat.S_IWUSR
    assert item.incident.reference in item.key
    assert list(item.custody.values_list("action", flat=True)) == [CustodyAction.UPLOADED]


def test_verification_finds_a_changed_byte(item):
    assert services.verify(item) == Integrity.INTACT
    path = stored_path(item)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    with path.open("r+b") as handle:
        handle.seek(5000)
        byte = handle.read(1)
        handle.seek(5000)
        handle.write(bytes([byte[0] ^ 1]))
    assert services.verify(item) == Integrity.MISMATCH
    item.refresh_from_db()
    assert item.integrity == Integrity.MISMATCH
    assert item.custody.filter(action=CustodyAction.INTEGRITY_FAILED).exists()


def test_a_missing_object_is_flagged(item):
    LocalStore().remove(item.key)
    assert services.verify(item) == Integrity.MISSING


def test_nothing_is_disposed_of_before_its_time_or_under_hold(item, lead):
    actor = Actor.for_user(lead)
    with pytest.raises(StateConflict, match="retained until"):
        services.dispose(actor, item)
    assert stored_path(item).exists()

    services.set_legal_hold(actor, item, True, reason="litigation")
    with time_machine.travel(item.retain_until + timedelta(days=1)):
        with pytest.raises(StateConflict, match="under legal hold"):
            services.dispose(actor, item)
        assert stored_path(item).exists()

        services.set_legal_hold(actor, item, False)
        services.dispose(actor, item)

    assert not stored_path(item).exists()
    item.refresh_from_db()
    assert item.disposed_at is not None
    assert list(item.custody.values_list("action", flat=True)) == [
        CustodyAction.UPLOADED,
        CustodyAction.LEGAL_HOLD_SET,
        CustodyAction.LEGAL_HOLD_LIFTED,
        CustodyAction.DISPOSED,
    ]


def test_retention_is_not_shortened_through_a_stale_copy_of_the_item(item, lead):
    actor = Actor.for_user(lead)
    stale = EvidenceItem.objects.get(pk=item.pk)
    services.extend_retention(actor, item, retention_class="long")

    # The stale copy still holds the standard date; a date between the two is shorter.
    with pytest.raises(StateConflict, match="only be extended"):
        services.extend_retention(actor, stale, until=stale.retain_until + timedelta(days=30))

    item.refresh_from_db()
    assert item.retain_until == item.acquired_at + timedelta(days=2555)
    assert item.custody.filter(action=CustodyAction.RETENTION_CHANGED).count() == 1
