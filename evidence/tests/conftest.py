from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def evidence_dirs(tmp_path: Path, settings: Any) -> Path:
    """Each test gets its own local store and signing key."""
    settings.EVIDENCE_LOCAL_DIR = tmp_path / "evidence"
    settings.EVIDENCE_SIGNING_KEY_FILE = str(tmp_path / "signing_key.pem")
    settings.EVIDENCE_BUCKET = ""
    return tmp_path
