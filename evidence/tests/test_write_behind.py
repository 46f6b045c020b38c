"""The local store's writer: the bytes that reach the file are exactly those handed in,
whatever the sizes of the chunks and of the whole, with or without O_DIRECT."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from unittest import mock

import pytest

from evidence import stores
from evidence.stores import WriteBehind

BLOCK, BUFFER = WriteBehind.BLOCK, WriteBehind.BUFFER_SIZE

SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, BUFFER - 1, BUFFER, BUFFER + BLOCK + 3, 3 * BUFFER]


def write_through(path: Path, data: bytes, chunk_size: int, direct: bool) -> WriteBehind:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with mock.patch.object(stores, "_try_direct_io", wraps=stores._try_direct_io) as turn_on:
            if not direct:
                turn_on.return_value = False
            writes = WriteBehind(descriptor)
        for start in range(0, len(data), chunk_size):
            writes.put(data[start : start + chunk_size])
        writes.finish()
    finally:
        os.close(descriptor)
    return writes


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "through the cache"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunk_size", [1000, 1024 * 1024])
def test_the_file_holds_exactly_the_bytes_handed_in(tmp_path, size, chunk_size, direct):
    data = os.urandom(size)
    path = tmp_path / "item"

    write_through(path, data, chunk_size, direct)

    assert path.read_bytes() == data


def file_system_of(path: Path) -> str:
    """The type of the mount `path` is on, from /proc/mounts (longest mount point wins)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount_point, fs_type, *_ = line.split()
        if str(path).startswith(mount_point) and len(mount_point) > len(best):
            best, kind = mount_point, fs_type
    return kind


def test_files_are_written_past_the_page_cache_where_the_file_system_allows(tmp_path):
    descriptor = os.open(tmp_path / "item", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        writes = WriteBehind(descriptor)
        direct_at_start = writes.direct
        writes.finish()
    finally:
        os.close(descriptor)
    if file_system_of(tmp_path.resolve()) in ("ext4", "xfs", "btrfs"):
        assert direct_at_start
    elif file_system_of(tmp_path.resolve()) == "tmpfs":
        assert not direct_at_start  # tmpfs refuses O_DIRECT: the cache is then used


def test_a_write_that_fails_is_raised_and_nothing_waits_for_ever(tmp_path, monkeypatch):
    written: list[int] = []

    def disk_full_after_a_while(descriptor: int, data: memoryview) -> int:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return len(data)

    monkeypatch.setattr(stores.os, "write", disk_full_after_a_while)
    monkeypatch.setattr(stores, "_try_direct_io", lambda descriptor: False)
    descriptor = os.open(tmp_path / "item", os.O_WRONLY | os.O_CREAT, 0o600)
    writes = WriteBehind(descriptor, depth=1)
    try:
        with pytest.raises(OSError, match="No space left"):
            for _ in range(50):  # more than the queue holds: put() must not block for ever
                writes.put(b"x" * 1000)
            writes.finish()
        writes.stop()
        assert not writes.thread.is_alive()
    finally:
        os.close(descriptor)


def test_a_file_system_that_refuses_direct_writes_late_is_written_through_the_cache(
    tmp_path, monkeypatch
):
    real_write = os.write
    refused: list[int] = []

    def refuses_direct(descriptor: int, data: memoryview) -> int:
        if stores.fcntl.fcntl(descriptor, stores.fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(descriptor, data)

    monkeypatch.setattr(stores.os, "write", refuses_direct)
    data = os.urandom(BUFFER + 5)
    path = tmp_path / "item"

    writes = write_through(path, data, 1024 * 1024, direct=True)

    assert path.read_bytes() == data
    assert not writes.direct
