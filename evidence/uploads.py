"""The two ways bytes come in, both streaming straight into the evidence store, hashed on
the way, with memory flat whatever the size:

- the API takes the file as the raw request body (`POST …/evidence/upload/?name=…`,
  `Content-Type: application/octet-stream`), read in chunks from the socket;
- the browser sends a multipart form, which `StoreUploadHandler` writes to the store as
  Django's parser hands it chunks (no temporary file, no copy in memory).

Authorization is decided before a single byte is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

from cases.models import Incident
from evidence import services
from evidence.stores import EvidenceStore, Placement, Stored, StoreWriter, default_store

# Read from the socket and handed to the store in pieces of this size.
CHUNK_SIZE = 1024 * 1024


def body_chunks(request: HttpRequest, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The request body, a chunk at a time."""
    while chunk := request.read(chunk_size):
        yield chunk


def client_address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class ExpectedHashMismatch(Exception):
    def __init__(self, expected: str, seen: str) -> None:
        super().__init__(f"the body hashes to {seen}, not to the {expected} announced")
        self.expected, self.seen = expected, seen


def store_body(
    request: HttpRequest, placement: Placement, expected_sha256: str = ""
) -> tuple[Stored, EvidenceStore]:
    """Stream the request body into the store. When the client announced a hash and the
    bytes do not match it, the stored copy is removed (it is not an item yet) and
    ExpectedHashMismatch says so."""
    store = default_store()
    writer = store.writer(placement)
    try:
        for chunk in body_chunks(request):
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    stored = writer.commit()
    if expected_sha256 and stored.sha256 != expected_sha256.lower():
        store.remove(stored.key, bucket=stored.bucket, version_id=stored.version_id)
        raise ExpectedHashMismatch(expected_sha256, stored.sha256)
    return stored, store


class StoredFile(UploadedFile):
    """What the form sees for a file that is already in the evidence store."""

    def __init__(self, stored: Stored, store: EvidenceStore, placement: Placement) -> None:
        super().__init__(
            file=None, name=placement.name, content_type=placement.content_type, size=stored.size
        )
        self.stored, self.store, self.placement = stored, store, placement


class StoreUploadHandler(FileUploadHandler):
    """Writes each uploaded file of a multipart form to the evidence store as it arrives.
    Install it on the request (`request.upload_handlers = [...]`) before touching
    request.POST or request.FILES, on a view that has checked who is asking."""

    chunk_size = CHUNK_SIZE

    def __init__(self, incident: Incident, retention_class: str | None = None) -> None:
        super().__init__()
        self.incident = incident
        self.retention_class = retention_class
        self.writer: StoreWriter | None = None
        self.placement: Placement | None = None
        self.store: EvidenceStore | None = None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.writer is not None:
            raise StopUpload(connection_reset=True)  # one file per upload
        self.store = default_store()
        self.placement = services.placement_for(
            self.incident,
            self.file_name or "upload",
            content_type=self.content_type or "application/octet-stream",
            retention_class=self.retention_class,
        )
        self.writer = self.store.writer(self.placement)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self.writer is not None
        self.writer.write(raw_data)
        return None  # nothing for later handlers: the bytes are stored

    def file_complete(self, file_size: int) -> StoredFile | None:
        assert self.writer is not None and self.store and self.placement
        stored = self.writer.commit()
        return StoredFile(stored, self.store, self.placement)

    def upload_interrupted(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
