"""Signed manifests: a changed line fails verification."""

from __future__ import annotations

import os

import pytest
from django.core.management import CommandError, call_command

from evidence import manifest, services
from irportal.actors import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def with_evidence(incident, responder):
    actor = Actor.for_user(responder)
    for name in ("a.log", "b.img"):
        placement = services.placement_for(incident, name)
        services.upload(actor, incident, [os.urandom(2048)], placement)
    return incident


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_an_exported_manifest_verifies_and_a_changed_line_does_not(with_evidence, tmp_path, suffix):
    path = tmp_path / f"manifest{suffix}"
    call_command("export_manifest", with_evidence.reference, str(path))
    call_command("verify_manifest", str(path))
    text = path.read_text()
    assert "b.img" in text
    path.write_text(text.replace("b.img", "c.img"))
    with pytest.raises(CommandError, match="does not match"):
        call_command("verify_manifest", str(path))


def test_another_key_does_not_verify(with_evidence, tmp_path):
    document = manifest.as_json(manifest.build(with_evidence))
    signature = manifest.sign(document)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert manifest.verify(document, signature)
    assert not manifest.verify(document, signature, stranger)


def test_verify_evidence_names_a_changed_item(with_evidence, settings):
    call_command("verify_evidence", with_evidence.reference)
    item = with_evidence.evidence.first()
    path = settings.EVIDENCE_LOCAL_DIR / item.key
    path.chmod(0o600)
    path.write_bytes(b"changed")
    with pytest.raises(CommandError, match=f"#{item.pk}"):
        call_command("verify_evidence", with_evidence.reference)
