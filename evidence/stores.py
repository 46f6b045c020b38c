"""Where evidence bytes live. Two stores keep the same promises: written once and never
overwritten, hashed (SHA-256) while the bytes stream in, read back for verification, and
never deleted before the item's retention ends (the services check that; S3 Object Lock
enforces it on its own as well).

- `LocalStore`: files under EVIDENCE_LOCAL_DIR, made read-only once written. The embedded
  default (`make run`, tests without AWS).
- `S3Store`: a versioned bucket with Object Lock in the central security account, written
  with multipart uploads; each object carries the lock's retain-until date and tags naming
  the incident, the item and its retention class.

Memory stays flat whatever the size: bytes pass through in chunks of at most PART_SIZE.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import queue
import re
import stat
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from django.conf import settings

from evidence.choices import StoreKind
from playbooks import aws
from playbooks.models import CloudAccount

# The size of S3 parts, and of the chunks read back for verification.
PART_SIZE = 8 * 1024 * 1024


@dataclass
class Stored:
    """Where a put landed, with what was measured on the way in."""

    store: str
    key: str
    size: int
    sha256: str
    bucket: str = ""
    version_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """What the store needs to know to file and lock an item."""

    incident_reference: str
    name: str
    retain_until: datetime
    retention_class: str
    content_type: str = "application/octet-stream"
    tags: dict[str, str] = field(default_factory=dict)


class StoreError(Exception):
    """The store refused or lost something; the message says what."""


class HashMismatch(StoreError):
    """The bytes do not hash to what the sender announced; nothing was kept."""

    def __init__(self, expected: str, seen: str) -> None:
        super().__init__(f"the bytes hash to {seen}, not to the {expected} announced")
        self.expected, self.seen = expected, seen


def _refuse_unless_expected(digest: str, expected_sha256: str) -> None:
    if expected_sha256 and digest != expected_sha256.lower():
        raise HashMismatch(expected_sha256, digest)


class EvidenceStore(Protocol):
    kind: str

    def writer(self, placement: Placement) -> StoreWriter: ...

    def read(self, key: str, *, bucket: str = "", version_id: str = "") -> Iterator[bytes]: ...

    def exists(self, key: str, *, bucket: str = "", version_id: str = "") -> bool: ...

    def extend_retention(
        self, key: str, until: datetime, *, bucket: str = "", version_id: str = ""
    ) -> None: ...

    def set_legal_hold(
        self, key: str, on: bool, *, bucket: str = "", version_id: str = ""
    ) -> None: ...

    def remove(self, key: str, *, bucket: str = "", version_id: str = "") -> None: ...


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.+-]", "_", name)[-120:] or "item"


def object_key(placement: Placement) -> str:
    """`IR-2026-0042/<uuid>-disk.img`: laid out by incident reference, never reused."""
    return f"{placement.incident_reference}/{uuid.uuid4().hex}-{_safe_name(placement.name)}"


def hash_stream(chunks: Iterable[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class StoreWriter(Protocol):
    """Bytes pushed in as they arrive (an upload handler), hashed on the way.

    `commit(expected_sha256)` checks the hash before the bytes become an object: on a
    mismatch the writer aborts and raises HashMismatch. Checking afterwards would be too
    late on S3, where the finished version is already locked and cannot be removed."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self, expected_sha256: str = "") -> Stored: ...

    def abort(self) -> None: ...


def put(store: EvidenceStore, chunks: Iterable[bytes], placement: Placement) -> Stored:
    """Pull `chunks` into the store: the whole stream or nothing."""
    writer = store.writer(placement)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


class LocalStore:
    kind: str = StoreKind.LOCAL

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root or settings.EVIDENCE_LOCAL_DIR)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StoreError(f"not a key of this store: {key}")
        return path

    def writer(self, placement: Placement) -> LocalWriter:
        key = object_key(placement)
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        return LocalWriter(key, final)

    def read(self, key: str, *, bucket: str = "", version_id: str = "") -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise StoreError(f"{key} is missing from the local store")
        return _read_file(path)

    def exists(self, key: str, *, bucket: str = "", version_id: str = "") -> bool:
        return self._path(key).is_file()

    def extend_retention(
        self, key: str, until: datetime, *, bucket: str = "", version_id: str = ""
    ) -> None:
        """Nothing to do: the local store keeps no lock of its own; the item row holds
        `retain_until` and the services refuse early disposal."""

    def set_legal_hold(self, key: str, on: bool, *, bucket: str = "", version_id: str = "") -> None:
        """As for retention: held in the item row."""

    def remove(self, key: str, *, bucket: str = "", version_id: str = "") -> None:
        path = self._path(key)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        path.unlink()


def _read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(PART_SIZE):
            yield chunk


class LocalWriter:
    """Writes to `<name>.partial`, then links the finished file under its final name: a
    link fails when the name exists, so nothing is ever overwritten, and a crash leaves
    only a partial file, never a short item."""

    def __init__(self, key: str, final: Path) -> None:
        self.key, self.final = key, final
        self.partial = final.with_name(final.name + ".partial")
        self.descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.writes = WriteBehind(self.descriptor)
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.writes.put(chunk)
        self.size += len(chunk)

    def commit(self, expected_sha256: str = "") -> Stored:
        try:
            self.writes.finish()
            _refuse_unless_expected(self.digest.hexdigest(), expected_sha256)
        except BaseException:
            self.abort()
            raise
        os.fsync(self.descriptor)
        os.close(self.descriptor)
        os.chmod(self.partial, stat.S_IRUSR | stat.S_IRGRP)
        os.link(self.partial, self.final)
        self.partial.unlink()
        return Stored(
            store=StoreKind.LOCAL, key=self.key, size=self.size, sha256=self.digest.hexdigest()
        )

    def abort(self) -> None:
        self.writes.stop()
        os.close(self.descriptor)
        self.partial.unlink(missing_ok=True)


class WriteBehind:
    """Writes chunks to a file on a thread of its own, so that writing overlaps with
    receiving and hashing the next ones (os.write and hashlib both let go of the GIL).

    Where the file system allows it, the file is written with O_DIRECT, past the page
    cache: evidence is written once and seldom read, so caching it only pushes out what the
    database needs, and on a virtual machine filling the page cache with a gigabyte can
    take longer than hashing it (1 GiB here: 0.5-0.7 s direct, 0.6-2.8 s through the cache).
    Direct writes must come from aligned memory in whole blocks, so chunks are gathered in
    an aligned buffer first and the last partial block is written through the cache.

    At most `depth` chunks wait, so memory stays flat; a chunk must not change once it is
    handed over (bytes never do)."""

    BLOCK = 4096
    BUFFER_SIZE = 4 * 1024 * 1024

    def __init__(self, descriptor: int, depth: int = 4) -> None:
        self.descriptor = descriptor
        self.direct = _try_direct_io(descriptor)
        self.waiting: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="evidence-writes", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        # An anonymous mapping is page-aligned, as O_DIRECT wants.
        buffer = mmap.mmap(-1, self.BUFFER_SIZE) if self.direct else None
        filled = 0
        while (chunk := self.waiting.get()) is not None:
            if self.failure is not None:
                continue  # keep taking chunks, so that put() never waits for ever
            try:
                if buffer is None:
                    self._write(memoryview(chunk))
                    continue
                view = memoryview(chunk)
                while view:
                    taken = min(len(view), self.BUFFER_SIZE - filled)
                    buffer[filled : filled + taken] = view[:taken]
                    filled, view = filled + taken, view[taken:]
                    if filled == self.BUFFER_SIZE:
                        self._write(memoryview(buffer))
                        filled = 0
            except BaseException as error:  # raised again by put() or finish()
                self.failure = error
        if buffer is not None and filled and self.failure is None:
            try:
                whole = filled - filled % self.BLOCK
                self._write(memoryview(buffer)[:whole])
                self._stop_direct_io()  # the tail is not a whole block
                self._write(memoryview(buffer)[whole:filled])
            except BaseException as error:
                self.failure = error
        # The buffer is not closed here: a failure kept for finish() may still hold a view
        # of it. It goes with the writer.

    def _write(self, view: memoryview) -> None:
        while view:
            try:
                view = view[os.write(self.descriptor, view) :]
            except OSError as error:
                # A file system may take O_DIRECT at fcntl() and refuse it at write().
                if error.errno != errno.EINVAL or not self.direct:
                    raise
                self._stop_direct_io()

    def _stop_direct_io(self) -> None:
        if self.direct:
            flags = fcntl.fcntl(self.descriptor, fcntl.F_GETFL)
            fcntl.fcntl(self.descriptor, fcntl.F_SETFL, flags & ~os.O_DIRECT)
            self.direct = False

    def put(self, chunk: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.waiting.put(chunk)

    def finish(self) -> None:
        """Wait for every chunk to be written; raise what writing one of them raised."""
        self.stop()
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        if self.thread.is_alive():
            self.waiting.put(None)
            self.thread.join()


def _try_direct_io(descriptor: int) -> bool:
    """Turn on O_DIRECT where the platform and the file system have it."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return False
    try:
        fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) | direct)
    except OSError:
        return False
    return True


class S3Store:
    kind: str = StoreKind.S3

    def __init__(self, s3: Any, bucket: str, lock_mode: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.lock_mode = lock_mode

    def writer(self, placement: Placement) -> S3Writer:
        return S3Writer(self, object_key(placement), placement)

    def _request(self, key: str, bucket: str, version_id: str) -> dict[str, Any]:
        request = {"Bucket": bucket or self.bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        return request

    def read(self, key: str, *, bucket: str = "", version_id: str = "") -> Iterator[bytes]:
        request = self._request(key, bucket, version_id)
        try:
            body = self.s3.get_object(**request)["Body"]
        except self.s3.exceptions.ClientError as error:
            raise StoreError(f"s3://{request['Bucket']}/{key}: {error}") from error
        return body.iter_chunks(PART_SIZE)  # type: ignore[no-any-return]

    def exists(self, key: str, *, bucket: str = "", version_id: str = "") -> bool:
        try:
            self.s3.head_object(**self._request(key, bucket, version_id))
        except self.s3.exceptions.ClientError:
            return False
        return True

    def extend_retention(
        self, key: str, until: datetime, *, bucket: str = "", version_id: str = ""
    ) -> None:
        self.s3.put_object_retention(
            **self._request(key, bucket, version_id),
            Retention={"Mode": self.lock_mode, "RetainUntilDate": until},
        )

    def set_legal_hold(self, key: str, on: bool, *, bucket: str = "", version_id: str = "") -> None:
        self.s3.put_object_legal_hold(
            **self._request(key, bucket, version_id),
            LegalHold={"Status": "ON" if on else "OFF"},
        )

    def remove(self, key: str, *, bucket: str = "", version_id: str = "") -> None:
        self.s3.delete_object(**self._request(key, bucket, version_id))


class S3Writer:
    """A multipart upload: parts of PART_SIZE go out as soon as they fill, so at most one
    part is held in memory."""

    def __init__(self, store: S3Store, key: str, placement: Placement) -> None:
        self.store, self.key = store, key
        self.retain_until = placement.retain_until
        tags = {**placement.tags, "ir-portal:retention-class": placement.retention_class}
        self.upload_id = store.s3.create_multipart_upload(
            Bucket=store.bucket,
            Key=key,
            ContentType=placement.content_type,
            ObjectLockMode=store.lock_mode,
            ObjectLockRetainUntilDate=placement.retain_until,
            Tagging=urlencode(tags),
        )["UploadId"]
        # Chunks wait here until a part's worth has come, then are joined once: a single
        # copy, where slicing a growing bytearray made three.
        self.waiting: list[bytes] = []
        self.waiting_size = 0
        self.parts: list[dict[str, Any]] = []
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        self.waiting.append(chunk)
        self.waiting_size += len(chunk)
        if self.waiting_size >= PART_SIZE:
            pending = b"".join(self.waiting)
            self.waiting, self.waiting_size = [], 0
            for start in range(0, len(pending) - PART_SIZE + 1, PART_SIZE):
                self._send(pending[start : start + PART_SIZE])
            if rest := pending[len(pending) - len(pending) % PART_SIZE :]:
                self.waiting, self.waiting_size = [rest], len(rest)

    def _send(self, part: bytes) -> None:
        number = len(self.parts) + 1
        answer = self.store.s3.upload_part(
            Bucket=self.store.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=part,
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def commit(self, expected_sha256: str = "") -> Stored:
        try:
            _refuse_unless_expected(self.digest.hexdigest(), expected_sha256)
            if self.waiting or not self.parts:  # S3 wants at least one part, even empty
                self._send(b"".join(self.waiting))
                self.waiting, self.waiting_size = [], 0
            done = self.store.s3.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        except BaseException:
            self.abort()
            raise
        version_id = done.get("VersionId", "")
        self._confirm_lock(version_id)
        return Stored(
            store=StoreKind.S3,
            key=self.key,
            size=self.size,
            sha256=self.digest.hexdigest(),
            bucket=self.store.bucket,
            version_id=version_id,
        )

    def _confirm_lock(self, version_id: str) -> None:
        """Look at the finished version's lock, and set it where it is missing or short.

        S3 applies the lock asked for in CreateMultipartUpload when the upload completes, so
        on AWS this only looks. moto 5.2.5 drops those headers: without this, an item would
        be recorded as locked until `retain_until` while its object is not locked at all.
        Only ever extends (a lock is never shortened), and tolerates the second S3 may
        round the date to."""
        s3, request = self.store.s3, self.store._request(self.key, self.store.bucket, version_id)
        seen = s3.head_object(**request)
        until = seen.get("ObjectLockRetainUntilDate")
        if (
            seen.get("ObjectLockMode") == self.store.lock_mode
            and until is not None
            and until >= self.retain_until - timedelta(seconds=1)
        ):
            return
        s3.put_object_retention(
            **request,
            Retention={"Mode": self.store.lock_mode, "RetainUntilDate": self.retain_until},
        )

    def abort(self) -> None:
        self.store.s3.abort_multipart_upload(
            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
        )


def default_store() -> EvidenceStore:
    """The store new uploads go to: S3 when EVIDENCE_BUCKET is set, the local one otherwise."""
    if settings.EVIDENCE_BUCKET:
        return s3_store()
    return LocalStore()


def s3_store() -> S3Store:
    """The evidence bucket, reached through the security account's role when one is
    registered (the deployment's own credentials otherwise)."""
    region = settings.EVIDENCE_BUCKET_REGION or None
    security = CloudAccount.objects.filter(is_security_account=True, enabled=True).first()
    if security is None:
        s3 = aws.client("s3", region)
    else:
        session = aws.session_for(security, "ir-portal.evidence-store")
        s3 = aws.session_client(session, "s3", region)
    return S3Store(s3, settings.EVIDENCE_BUCKET, settings.EVIDENCE_OBJECT_LOCK_MODE)


def store_for(kind: str) -> EvidenceStore:
    if kind == StoreKind.S3:
        return s3_store()
    if kind == StoreKind.LOCAL:
        return LocalStore()
    raise StoreError(f"items in {kind} are not read through a byte store")
