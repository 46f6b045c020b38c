"""An incident's evidence manifest (JSON or CSV: items, hashes, custody events), signed
with the deployment's Ed25519 key so that anyone holding the public key can check that not
one line changed since it was exported.

The signature covers the exact bytes of the manifest file; it travels beside the file
(`manifest.json.sig`, base64) with a copy of the deployment's public key
(`manifest.json.pub.pem`). That copy is a convenience for a third party, who must compare
it with the key obtained out of band: anyone who changes the manifest can re-sign it and
replace both files, so a check is only as good as the key it uses. `verify` uses the
deployment's own key unless given another.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from cases.models import Incident
from evidence.models import CustodyEvent, EvidenceItem

ITEM_FIELDS = [
    "id",
    "kind",
    "name",
    "source",
    "location",
    "size",
    "sha256",
    "acquired_at",
    "acquired_by",
    "retention_class",
    "retain_until",
    "legal_hold",
    "integrity",
    "verified_at",
    "disposed_at",
]
CUSTODY_FIELDS = ["item", "action", "at", "actor", "from", "to", "sha256"]


def build(incident: Incident) -> dict[str, Any]:
    items = EvidenceItem.objects.filter(incident=incident).order_by("id")
    events = (
        CustodyEvent.objects.filter(item__incident=incident)
        .order_by("item_id", "at", "id")
        .select_related("item")
    )
    return {
        "incident": incident.reference,
        "generated_at": timezone.now().isoformat(),
        "items": [_item_row(item) for item in items],
        "custody": [_custody_row(event) for event in events],
    }


def _item_row(item: EvidenceItem) -> dict[str, Any]:
    return {
        "id": item.pk,
        "kind": item.kind,
        "name": item.name,
        "source": item.source,
        "location": item.location,
        "size": item.size,
        "sha256": item.sha256,
        "acquired_at": item.acquired_at.isoformat(),
        "acquired_by": item.acquired_by,
        "retention_class": item.retention_class,
        "retain_until": item.retain_until.isoformat(),
        "legal_hold": item.legal_hold,
        "integrity": item.integrity,
        "verified_at": item.verified_at.isoformat() if item.verified_at else "",
        "disposed_at": item.disposed_at.isoformat() if item.disposed_at else "",
    }


def _custody_row(event: CustodyEvent) -> dict[str, Any]:
    return {
        "item": event.item_id,
        "action": event.action,
        "at": event.at.isoformat(),
        "actor": f"{event.actor_kind}:{event.actor_name}",
        "from": event.from_location,
        "to": event.to_location,
        "sha256": event.sha256,
    }


def as_json(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"


def as_csv(manifest: dict[str, Any]) -> bytes:
    """Two tables in one file: the items, a blank line, then the custody events."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"# evidence manifest of {manifest['incident']}", manifest["generated_at"]])
    writer.writerow(ITEM_FIELDS)
    for row in manifest["items"]:
        writer.writerow([row[field] for field in ITEM_FIELDS])
    writer.writerow([])
    writer.writerow(CUSTODY_FIELDS)
    for row in manifest["custody"]:
        writer.writerow([row[field] for field in CUSTODY_FIELDS])
    return out.getvalue().encode()


# ---------------------------------------------------------------------------------------
# Signing


def signing_key() -> Ed25519PrivateKey:
    """The deployment's key; generated into var/ on first use when DEBUG is on."""
    path = Path(settings.EVIDENCE_SIGNING_KEY_FILE)
    if not path.exists():
        if not settings.DEBUG:
            raise ImproperlyConfigured(f"EVIDENCE_SIGNING_KEY_FILE {path} does not exist")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pem)
        path.chmod(0o600)
    return _private_key(path)


def _private_key(path: Path) -> Ed25519PrivateKey:
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path} is not an Ed25519 private key")
    return loaded


def public_key_pem() -> bytes:
    return (
        signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def deployment_public_key() -> Ed25519PublicKey:
    """The public half of the deployment's key. Unlike `signing_key`, never generates one:
    a key made up on the spot would only prove that nothing verifies against it."""
    path = Path(settings.EVIDENCE_SIGNING_KEY_FILE)
    if not path.is_file():
        raise ImproperlyConfigured(
            f"EVIDENCE_SIGNING_KEY_FILE {path} does not exist; give the public key to check with"
        )
    return _private_key(path).public_key()


def sign(document: bytes) -> str:
    """A base64 Ed25519 signature of the exact bytes."""
    return base64.b64encode(signing_key().sign(document)).decode()


def verify(document: bytes, signature: str, public_key: bytes | None = None) -> bool:
    """Whether `signature` is the deployment's (or `public_key`'s, PEM) over `document`."""
    key = serialization.load_pem_public_key(public_key) if public_key else deployment_public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    try:
        key.verify(base64.b64decode(signature, validate=True), document)
    except (InvalidSignature, ValueError):
        return False
    return True
