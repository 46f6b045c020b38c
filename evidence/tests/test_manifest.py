"""Signed manifests: a changed line fails verification."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, ManagementUtility, call_command

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


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def manage(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run a command as `manage.py` would: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        ManagementUtility(["manage.py", *argv]).execute()
        status = 0
    except SystemExit as exit:
        status = int(exit.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_another_key_does_not_verify(with_evidence, tmp_path):
    document = manifest.as_json(manifest.build(with_evidence))
    signature = manifest.sign(document)
    stranger = public_pem(Ed25519PrivateKey.generate())
    assert manifest.verify(document, signature)
    assert not manifest.verify(document, signature, stranger)


def forge(path: Path) -> None:
    """What someone who changed the manifest would do: re-sign it with a key of their own
    and replace the signature and the public key beside it."""
    path.write_text(path.read_text().replace("b.img", "c.img"))
    forger = Ed25519PrivateKey.generate()
    Path(f"{path}.sig").write_text(base64.b64encode(forger.sign(path.read_bytes())).decode() + "\n")
    Path(f"{path}.pub.pem").write_bytes(public_pem(forger))


def test_a_manifest_re_signed_with_a_swapped_public_key_fails(with_evidence, tmp_path, capsys):
    path = tmp_path / "manifest.json"
    call_command("export_manifest", with_evidence.reference, str(path))
    forge(path)

    status, out, err = manage(capsys, "verify_manifest", str(path))

    assert status != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "does not match this deployment's key" in err


def test_a_third_party_verifies_with_the_public_key_they_were_given(
    with_evidence, tmp_path, settings, capsys
):
    path = tmp_path / "manifest.csv"
    call_command("export_manifest", with_evidence.reference, str(path))
    obtained_out_of_band = tmp_path / "deployment.pub.pem"
    obtained_out_of_band.write_bytes(manifest.public_key_pem())
    # The third party holds no private key at all.
    settings.EVIDENCE_SIGNING_KEY_FILE = str(tmp_path / "not-here.pem")

    good = manage(capsys, "verify_manifest", str(path), "--public-key", str(obtained_out_of_band))
    forge(path)
    forged = manage(capsys, "verify_manifest", str(path), "--public-key", str(obtained_out_of_band))
    without_a_key = manage(capsys, "verify_manifest", str(path))

    assert good[0] == 0 and "signature valid" in good[1]
    assert forged[0] != 0 and "does not match" in forged[2]
    assert without_a_key[0] != 0 and "does not exist" in without_a_key[2]
    assert not Path(settings.EVIDENCE_SIGNING_KEY_FILE).exists()


def test_verify_evidence_names_a_changed_item(with_evidence, settings):
    call_command("verify_evidence", with_evidence.reference)
    item = with_evidence.evidence.first()
    path = settings.EVIDENCE_LOCAL_DIR / item.key
    path.chmod(0o600)
    path.write_bytes(b"changed")
    with pytest.raises(CommandError, match=f"#{item.pk}"):
        call_command("verify_evidence", with_evidence.reference)
