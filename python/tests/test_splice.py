"""Frames written into the pipe to Elixir with their large buffers spliced (snex.splice)."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading
import time

import pytest

from snex import splice

PIPE_SIZE = 64 * 1024
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="vmsplice is Linux's")


def slow_reader(fd: int, out: bytearray) -> threading.Thread:
    """Reads ``fd`` until EOF into ``out`` on a thread, pausing after every read."""

    def run() -> None:
        while chunk := os.read(fd, PIPE_SIZE):
            out.extend(chunk)
            time.sleep(0.001)
        os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def small_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    return r, w


@linux_only
def test_spliced_bytes_are_read_before_write_all_returns() -> None:
    r, w = small_pipe()
    got = bytearray()
    reader = slow_reader(r, got)
    head = b"head" * 10
    buffers = [bytearray(os.urandom(1_000_000)), bytearray(os.urandom(2_000_000))]
    expected = head + b"".join(buffers)
    before = splice.spliced_bytes
    splice.write_all(w, [head, *(memoryview(b) for b in buffers)], by_reference=2)
    # The buffers' memory changes at once: a page still in the pipe would show it.
    for b in buffers:
        b[:] = b"\xee" * len(b)
    os.close(w)
    reader.join()
    assert got == expected
    assert splice.spliced_bytes - before == 3_000_000 - PIPE_SIZE


@linux_only
def test_small_buffers_and_other_parts_are_copied() -> None:
    r, w = small_pipe()
    got = bytearray()
    reader = slow_reader(r, got)
    before = splice.spliced_bytes
    big = b"b" * 1_000_000
    # A buffer within a pipe-full of the end; a large part that is not a buffer.
    splice.write_all(w, [big, b"s" * (PIPE_SIZE + 1000)], by_reference=1)
    splice.write_all(w, [big])
    os.close(w)
    reader.join()
    assert splice.spliced_bytes == before
    assert got == big + b"s" * (PIPE_SIZE + 1000) + big


def test_a_socket_is_written_by_copy() -> None:
    a, b = socket.socketpair()
    data = os.urandom(3_000_000)
    got = bytearray()

    def read() -> None:
        while chunk := b.recv(1 << 20):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    splice.write_all(a.fileno(), [b"x", memoryview(data)], by_reference=1)
    a.close()
    reader.join()
    b.close()
    assert got == b"x" + data


@linux_only
@pytest.mark.parametrize("how", ["error", "nothing taken"])
def test_a_refused_splice_falls_back_to_copying(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    def refuse(fd: int, views: object) -> int:
        if how == "error":
            raise OSError(22, "Invalid argument")
        return 0

    monkeypatch.setattr(splice, "_get_splicer", lambda: refuse)
    r, w = small_pipe()
    got = bytearray()
    reader = slow_reader(r, got)
    data = os.urandom(1_000_000)
    splice.write_all(w, [b"h", data], by_reference=1)
    os.close(w)
    reader.join()
    assert got == b"h" + data


def test_one_part_a_non_blocking_pipe_takes_in_pieces_arrives_whole() -> None:
    r, w = small_pipe()
    os.set_blocking(w, False)
    got = bytearray()
    reader = slow_reader(r, got)
    data = os.urandom(5 * PIPE_SIZE + 123)
    splice.write_all(w, [data])
    splice.write_all(w, [b"end"])
    os.close(w)
    reader.join()
    assert got == data + b"end"
