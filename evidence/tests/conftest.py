from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture(autouse=True)
def evidence_dirs(tmp_path: Path, settings: Any) -> Path:
    """Each test gets its own local store and signing key (provisioned, as in production:
    only DEBUG generates one)."""
    settings.EVIDENCE_LOCAL_DIR = tmp_path / "evidence"
    key_file = tmp_path / "signing_key.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings.EVIDENCE_SIGNING_KEY_FILE = str(key_file)
    settings.EVIDENCE_BUCKET = ""
    return tmp_path
