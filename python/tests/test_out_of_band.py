"""Out-of-band buffers (docs/protocol.md): frames whose large binaries travel after the pickle,
read by the runner into the objects they become, and written by it from the values' memory."""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import pickle
import select
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import LoopHarness, Peer, eval_frame, read_reply, write_all

from snex import buffers, codec
from snex.frames import FrameReader, OutOfBand, ProtocolError
from snex.runner import CANCEL, EVAL, REPLY_OK

BIG = bytes(range(256)) * 1024  # 256 KiB


def oob_frame(kind: int, req_id: int, value: Any, kinds: list[int]) -> bytes:
    """A frame whose pickle takes its `pickle.PickleBuffer`s out of band, as Elixir writes it:
    the buffer of index i becomes a `kinds[i]` object."""
    bufs: list[pickle.PickleBuffer] = []
    data = pickle.dumps(value, 5, buffer_callback=lambda b: bufs.append(b))  # type: ignore[func-returns-value]
    raws = [b.raw() for b in bufs]
    assert len(raws) == len(kinds)
    table = buffers.COUNT.pack(len(raws)) + b"".join(
        buffers.ENTRY.pack(k, r.nbytes) for k, r in zip(kinds, raws, strict=True)
    )
    body = table + data + b"".join(r.tobytes() for r in raws)
    return struct.pack(">IBQ", 9 + len(body), kind | buffers.OUT_OF_BAND, req_id) + body


def chunks(data: bytes, sizes: Iterator[int]) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        n = next(sizes)
        yield data[pos : pos + n]
        pos += n


def read_frames(data: bytes, piece_sizes: list[int]) -> list[Any]:
    """What a `FrameReader` makes of `data` written into a pipe in pieces of these sizes."""
    r, w = os.pipe()
    os.set_blocking(r, False)

    def feed() -> None:
        sizes = iter(piece_sizes * (len(data) // sum(piece_sizes) + 1))
        for piece in chunks(data, sizes):
            write_all(w, piece)
        os.close(w)

    writer = threading.Thread(target=feed)
    writer.start()
    reader = FrameReader(r, None, CANCEL)

    while True:
        select.select([r], [], [])
        try:
            if not reader.read_once():
                break
        except BlockingIOError:
            pass
    writer.join()
    os.close(r)
    return list(reader.queue)


@pytest.mark.parametrize("pieces", [[1 << 20], [1, 7, 13, 4096], [65536, 3]])
def test_each_buffer_becomes_the_object_its_kind_says(pieces: list[int]) -> None:
    value = [pickle.PickleBuffer(BIG), "small", pickle.PickleBuffer(bytearray(BIG[:70_000]))]
    text = ("é" * 50_000).encode()
    data = (
        oob_frame(EVAL, 1, value, [buffers.BYTES, buffers.BYTEARRAY])
        + oob_frame(EVAL, 2, (pickle.PickleBuffer(bytearray(text)),), [buffers.STR])
        + struct.pack(">IBQ", 9 + 4, EVAL, 3)
        + pickle.dumps(None, 5)
    )
    frames = read_frames(data, pieces)
    assert [(k, i) for k, i, _ in frames] == [(EVAL, 1), (EVAL, 2), (EVAL, 3)]
    first = frames[0][2]
    assert isinstance(first, OutOfBand)
    assert len(first) == len(data[13 : 13 + len(first)])
    big, small, ba = codec.decode(first)
    assert type(big) is bytes and big == BIG
    assert small == "small"
    assert type(ba) is bytearray and ba == BIG[:70_000]
    (s,) = codec.decode(frames[1][2])
    assert s == "é" * 50_000


@pytest.mark.parametrize(
    "table",
    [
        buffers.COUNT.pack(0),
        buffers.COUNT.pack(buffers.MAX_BUFFERS + 1),
        buffers.COUNT.pack(1) + buffers.ENTRY.pack(3, 1),
        buffers.COUNT.pack(1) + buffers.ENTRY.pack(1, 1 << 40),
        buffers.COUNT.pack(1) + buffers.ENTRY.pack(1, 4),
    ],
)
def test_a_bad_buffer_table_is_a_protocol_error(table: bytes) -> None:
    body = table + b"\x80\x05N."
    data = struct.pack(">IBQ", 9 + len(body), EVAL | buffers.OUT_OF_BAND, 1) + body
    with pytest.raises(ProtocolError):
        read_frames(data, [len(data)])


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython only")
def test_a_new_bytes_object_is_filled_in_place() -> None:
    target = buffers.Target(buffers.BYTES, 100_000)
    target.view[:] = BIG[:100_000]
    value = target.value()
    # The object read into is the value: no copy.
    assert value is target.obj
    assert type(value) is bytes and value == BIG[:100_000]
    assert hash(value) == hash(BIG[:100_000])


def test_without_ctypes_bytes_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers, "_bytes_maker", lambda: None)
    target = buffers.Target(buffers.BYTES, 1000)
    target.view[:] = BIG[:1000]
    value = target.value()
    assert type(value) is bytes and value == BIG[:1000]


def test_encode_sends_large_buffers_out_of_band() -> None:
    out: list[memoryview] = []
    assert pickle.loads(codec.encode(BIG, out_of_band=out), buffers=out) == BIG
    assert [bytes(b) for b in out] == [BIG]

    out = []
    value = [b"small", memoryview(BIG), array.array("d", range(10_000)), memoryview(b"xy")]
    body = codec.encode(value, out_of_band=out)
    assert [len(b) for b in out] == [len(BIG), 80_000]
    assert BIG not in body
    assert pickle.loads(body, buffers=out) == [
        b"small",
        BIG,
        array.array("d", range(10_000)).tobytes(),
        b"xy",
    ]

    # Without a list, or for a strided view, everything is in the pickle.
    body = codec.encode(value)
    assert pickle.loads(body) == pickle.loads(codec.encode(value, out_of_band=[]), buffers=out)
    out = []
    strided = memoryview(BIG)[::2]
    assert pickle.loads(codec.encode(strided, out_of_band=out)) == BIG[::2]
    assert out == []


def test_encode_keeps_to_the_buffer_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers, "MAX_BUFFERS", 2)
    out: list[memoryview] = []
    body = codec.encode([memoryview(BIG) for _ in range(3)], out_of_band=out)
    assert len(out) == 2
    assert pickle.loads(body, buffers=out) == [BIG] * 3


def test_the_runner_reads_and_writes_buffers_out_of_band() -> None:
    peer = Peer()
    try:
        frame = oob_frame(
            EVAL,
            1,
            (
                -1,
                "return [type(x).__name__, x == big, memoryview(x), y]",
                "<t>",
                0,
                {"x": pickle.PickleBuffer(BIG), "big": BIG[:10], "y": b"tail"},
                False,
            ),
            [buffers.BYTES],
        )
        write_all(peer.to_w, frame)
        kind, req_id, value, raw = read_reply(peer.from_r)
        assert (kind, req_id) == (REPLY_OK, 1)
        assert value[0] == "bytes" and value[1] is False
        assert value[2] == BIG and value[3] == b"tail"
        assert raw == [BIG]
    finally:
        assert peer.close() == 0


def test_only_arrays_of_plain_numbers_become_binaries() -> None:
    assert pickle.loads(codec.encode(array.array("b", [1, -1]))) == b"\x01\xff"
    with pytest.raises(codec.EncodeError, match=r"array\.array"):
        codec.encode(array.array("u", "ab"))


def test_a_reader_that_fails_half_way_ends_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """No memory for a buffer: the frames read with it must not be read (and run) again, and
    the rest of the stream cannot be trusted: the runner stops."""
    harness = LoopHarness()
    harness.env["runs"] = []

    def no_memory(self: Any, kind: int, size: int) -> None:
        raise MemoryError("simulated")

    monkeypatch.setattr(buffers.Target, "__init__", no_memory)

    value = (-1, "return 0", "<t>", 0, {"x": pickle.PickleBuffer(bytearray(100))}, False)
    harness.send(eval_frame(1, "runs.append(1)") + oob_frame(EVAL, 2, value, [buffers.BYTES]))
    try:
        with pytest.raises(SystemExit):
            harness.loop.run_until_complete(asyncio.sleep(5))
    finally:
        harness.close()
    assert harness.env["runs"] in ([], [1])  # never twice
    assert "cannot read frames any more" in harness.died[0]
    assert "MemoryError" in harness.died[0]


def test_send_and_cast_send_large_bytes_out_of_band(monkeypatch: pytest.MonkeyPatch) -> None:
    from snex import interface

    frames: list[tuple[bytes, list[int]]] = []

    class Recorder:
        pid = os.getpid()
        takes_buffers = True

        def write_frame(self, kind: int, req_id: int, body: bytes = b"", out_of_band: Any = ()):
            frames.append((body, [b.nbytes for b in out_of_band]))

    monkeypatch.setattr(interface, "link", lambda: Recorder())
    interface.send_now("name", BIG)
    interface.cast_now("m", "f", [BIG, b"small", bytearray(BIG)])
    assert [lens for _, lens in frames] == [[len(BIG)], [len(BIG), len(BIG)]]
    assert all(len(body) < 1000 for body, _ in frames)


def test_the_loop_follows_a_large_frame_as_it_arrives() -> None:
    body = pickle.dumps(BIG * 12, 5)  # 3 MiB
    data = struct.pack(">IBQ", 9 + len(body), EVAL, 1) + body
    half = len(data) // 2
    r, w = os.pipe()
    os.set_blocking(r, False)
    halfway = threading.Event()

    def feed() -> None:
        for pos in range(0, half, 128 * 1024):
            write_all(w, data[pos : min(pos + 128 * 1024, half)])
            time.sleep(0.001)
        halfway.set()

    writer = threading.Thread(target=feed)
    writer.start()
    reader = FrameReader(r, None, CANCEL)
    calls = 0
    try:
        # Until half the frame is in, and then no more comes: a read follows the frame as it
        # arrives (pieces every millisecond), and gives the loop back once it stops.
        while not (halfway.is_set() and reader._pending and reader._pending.filled > half - 100):
            select.select([r], [], [], 1)
            calls += 1
            with contextlib.suppress(BlockingIOError):
                reader.read_once(follow=True)
        assert calls < 8, calls  # 1.5 MiB through a 64 KiB pipe: 24 reads without following
        started = time.monotonic()
        with pytest.raises(BlockingIOError):
            reader.read_once(follow=True)
        assert time.monotonic() - started < 1
        writer.join()
        writer = threading.Thread(target=write_all, args=(w, data[half:]))
        writer.start()
        while not reader.queue:
            select.select([r], [], [])
            with contextlib.suppress(BlockingIOError):
                reader.read_once(follow=True)
        assert reader.queue[0][2] == body
    finally:
        os.close(r)  # a writer still blocked on the pipe gets an error and ends
        writer.join()
        os.close(w)
