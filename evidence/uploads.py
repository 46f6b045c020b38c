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


def store_body(
    request: HttpRequest, placement: Placement, expected_sha256: str = ""
) -> tuple[Stored, EvidenceStore]:
    """Stream the request body into the store. When the client announced a hash and the
    bytes do not match it, nothing is stored and stores.HashMismatch says so."""
    store = default_store()
    writer = store.writer(placement)
    try:
        for chunk in body_chunks(request):
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.commit(expected_sha256), store


class StreamedFile(UploadedFile):
    """What the form sees for a file whose bytes are in the store but not yet an object
    there: `commit()` makes them one, once the view has decided to record them, and
    `discard()` drops them. On S3 a committed version is locked at once, so a refused form
    or a failed CSRF check must never get that far."""

    def __init__(self, writer: StoreWriter, store: EvidenceStore, placement: Placement) -> None:
        super().__init__(file=None, name=placement.name, content_type=placement.content_type)
        self.writer, self.store, self.placement = writer, store, placement
        self.stored: Stored | None = None

    def commit(self) -> Stored:
        self.stored = self.writer.commit()
        return self.stored


class StoreUploadHandler(FileUploadHandler):
    """Streams the one file of a multipart form into the evidence store as it arrives.
    Install it on the request (`request.upload_handlers = [...]`) before touching
    request.POST or request.FILES, on a view that has checked who is asking, and call
    `discard_uncommitted()` when the view is done, whatever happened: a form that was
    refused, a check that failed or a client that went away leaves nothing behind."""

    chunk_size = CHUNK_SIZE

    def __init__(self, incident: Incident, retention_class: str | None = None) -> None:
        super().__init__()
        self.incident = incident
        self.retention_class = retention_class
        self.upload: StreamedFile | None = None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.upload is not None:
            raise StopUpload(connection_reset=True)  # one file per upload
        store = default_store()
        placement = services.placement_for(
            self.incident,
            self.file_name or "upload",
            content_type=self.content_type or "application/octet-stream",
            retention_class=self.retention_class,
        )
        self.upload = StreamedFile(store.writer(placement), store, placement)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self.upload is not None
        self.upload.writer.write(raw_data)
        return None  # nothing for later handlers: the bytes are stored

    def file_complete(self, file_size: int) -> StreamedFile | None:
        assert self.upload is not None
        self.upload.size = file_size
        return self.upload

    def discard_uncommitted(self) -> None:
        if self.upload is not None and self.upload.stored is None:
            self.upload.writer.abort()

    upload_interrupted = discard_uncommitted


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
