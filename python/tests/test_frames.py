"""Reading frames (snex.frames): a read that holds exactly one frame takes a short path, which
must queue the same frame as the general one."""

from __future__ import annotations

import os
import pickle
import struct

import pytest
from support import eval_frame, frame

from snex import buffers
from snex.frames import FrameReader, OutOfBand, ProtocolError
from snex.runner import CANCEL, EVAL


def reader_with(*writes: bytes) -> FrameReader:
    """A reader that has read each of `writes` with one `read_once`."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = FrameReader(r, None, CANCEL)
    try:
        for data in writes:
            os.write(w, data)
            assert reader.read_once()
    finally:
        os.close(w)
        os.close(r)
    return reader


def test_a_lone_frame_is_queued_whole() -> None:
    data = eval_frame(7, "return 1", env_id=0)
    reader = reader_with(data)
    assert list(reader.queue) == [(EVAL, 7, data[13:])]
    assert type(reader.queue[0][2]) is bytes
    assert pickle.loads(reader.queue[0][2])[1] == "return 1"


def test_a_lone_cancel_is_known_as_one() -> None:
    reader = reader_with(frame(CANCEL, 9))
    assert list(reader.queue) == [(CANCEL, 9, b"")]
    assert reader.cancels == {9}


def test_frames_split_across_reads_are_put_together() -> None:
    first, second = eval_frame(1, "return 1"), eval_frame(2, "return 2")
    whole = first + second
    # A header alone, then the rest of its frame with the next one: neither read is one frame.
    reader = reader_with(whole[:13], whole[13 : len(first) + 5], whole[len(first) + 5 :])
    assert [(k, i, b) for k, i, b in reader.queue] == [
        (EVAL, 1, first[13:]),
        (EVAL, 2, second[13:]),
    ]
    # And a lone frame after them takes the short path again.
    reader2 = reader_with(whole[:20], whole[20:] + eval_frame(3, None))
    assert [i for _, i, _ in reader2.queue] == [1, 2, 3]


def test_a_lone_frame_with_buffers_gets_them() -> None:
    value = pickle.PickleBuffer(b"z" * 100)
    bufs: list[pickle.PickleBuffer] = []
    data = pickle.dumps((value,), 5, buffer_callback=bufs.append)  # type: ignore[arg-type]
    raw = bufs[0].raw().tobytes()
    body = buffers.COUNT.pack(1) + buffers.ENTRY.pack(buffers.BYTES, len(raw)) + data + raw
    reader = reader_with(struct.pack(">IBQ", 9 + len(body), EVAL | buffers.OUT_OF_BAND, 4) + body)
    ((kind, req_id, got),) = reader.queue
    assert (kind, req_id) == (EVAL, 4)
    assert isinstance(got, OutOfBand)
    assert pickle.loads(got.pickle, buffers=got.values()) == (b"z" * 100,)


def test_a_lone_short_frame_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        reader_with(struct.pack(">IBQ", 5, EVAL, 1))


def test_a_read_that_finishes_a_frame_is_not_taken_for_a_frame_of_its_own() -> None:
    # The rest of frame 1 happens to look like a whole frame (2): it is frame 1's body.
    inner = eval_frame(2, "return 2")
    outer_head = struct.pack(">IBQ", 9 + len(inner), EVAL, 1)
    reader = reader_with(outer_head, inner)
    assert list(reader.queue) == [(EVAL, 1, inner)]
