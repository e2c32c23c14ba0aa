"""The floors of the benchmarks: what the OS and Python alone give, with no BEAM and no Snex.

Run by bench/bench_helper.exs as ``python3 bench/floors.py MODE ARGS...``:

- ``transfer SIZE RUNS PLACEMENT [PIPE_SIZE [splice]]``: a child process writes SIZE bytes
  into a pipe (the default pipe size, or PIPE_SIZE; with ``splice``, handed over with Linux's
  ``vmsplice`` instead of ``write``), the parent reads them into a preallocated ``bytearray``
  with ``os.readv``; prints the duration of each run in µs, from the parent's "go" to its last
  byte read.
- ``pickle SIZE RUNS``: ``pickle.dumps(data, 5)`` then ``pickle.loads`` of ``b"x" * SIZE``;
  prints the duration of each run in µs.
- ``pingpong RUNS PLACEMENT``: a 4-byte ping-pong through two pipes between two processes;
  prints the round trip of each run in µs.
- ``runner RUNS PLACEMENT PACKAGE_DIR``: not a floor but a reference, Snex's Python side alone:
  ``python -m snex`` (the package in PACKAGE_DIR) on fds 3/4 and this process sending it
  ``return 1`` EVAL frames as Elixir does (docs/protocol.md); prints each round trip in µs.
- ``null-runner``: not a floor but a reference, a stand-in for Snex's runner that does no work,
  run by an interpreter in place of ``python -m snex`` (its ``:wrap_exec``): on fds 3/4 it
  says HELLO, answers every EVAL with ``1`` and every MAKE_ENV or CALL_FN with ``None``, and
  ignores the rest. ``pyeval`` against it is what Snex's BEAM side costs with a Python that
  does nothing.
- ``cpus``: prints how many CPUs the two processes can be pinned to (0 without
  ``os.sched_setaffinity``).
- ``echo``: a minimal echo loop of 4-byte length-prefixed packets on stdin/stdout, for a BEAM
  port (the port ping-pong).

PLACEMENT is ``same`` (both processes pinned to one CPU), ``apart`` (pinned to two CPUs) or
``any`` (left to the OS). Where the two processes run matters: on a virtual machine a wake-up
across CPUs can cost tens of µs, and the OS, left alone, keeps a pair on one CPU or on two
from one run to the next. Every timed mode runs a few warm-up rounds first and prints one
number per line.
"""

import fcntl
import itertools
import os
import pickle
import sys
import time
from collections.abc import Callable

WARMUP = 2


def pinnable_cpus() -> int:
    """How many CPUs this process may run on, if it can pin itself; else 0."""
    if not hasattr(os, "sched_setaffinity"):
        return 0
    return len(os.sched_getaffinity(0))


def pin(placement: str, child: bool) -> None:
    """Pins this process (the child, or the parent, of a pair) as ``placement`` says."""
    if placement == "any":
        return
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0] if child or placement == "same" else cpus[1]})


def write_all(fd: int, view: memoryview) -> None:
    """Writes the whole of ``view`` into ``fd``."""
    sent = 0
    while sent < len(view):
        sent += os.write(fd, view[sent:])


def fork_child(
    placement: str, serve: Callable[[int, int], None]
) -> tuple[int, int, int]:
    """Forks a child pinned by ``placement`` that runs ``serve(requests, replies)`` on two
    pipes and exits; returns its pid and this side's ends (to write requests, to read
    replies)."""
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    pid = os.fork()
    pin(placement, child=pid == 0)
    if pid == 0:
        os.close(requests_w)
        os.close(replies_r)
        serve(requests_r, replies_w)
        os._exit(0)
    os.close(requests_r)
    os.close(replies_w)
    return pid, requests_w, replies_r


def timed(runs: int, warmup: int, once: Callable[[], object]) -> list[float]:
    """``once()`` ``warmup + runs`` times; the durations of the last ``runs`` in µs."""
    samples = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        once()
        if i >= warmup:
            samples.append((time.perf_counter() - t0) * 1e6)
    return samples


def splice_all(fd: int, data: bytes) -> None:
    """Hands all of ``data`` to the pipe ``fd`` with ``vmsplice`` (Linux)."""
    import ctypes

    vmsplice = ctypes.CDLL(None, use_errno=True).vmsplice
    vmsplice.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)
    vmsplice.restype = ctypes.c_ssize_t
    base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
    iov = (ctypes.c_size_t * 2)()
    sent = 0
    while sent < len(data):
        iov[0], iov[1] = base + sent, len(data) - sent
        n = vmsplice(fd, iov, 1, 0)
        if n < 0:
            raise OSError(ctypes.get_errno(), "vmsplice")
        sent += n


def transfer(
    size: int, runs: int, placement: str, pipe_size: int = 0, splice: bool = False
) -> list[float]:
    """Moves ``size`` bytes from a child process to this one through a pipe, ``runs`` times."""

    def serve(requests: int, replies: int) -> None:
        data = b"x" * size
        view = memoryview(data)
        if pipe_size:
            fcntl.fcntl(replies, getattr(fcntl, "F_SETPIPE_SZ", 1031), pipe_size)
        while os.read(requests, 1):
            if splice:
                splice_all(replies, data)
            else:
                write_all(replies, view)

    pid, go, data = fork_child(placement, serve)
    view = memoryview(bytearray(size))

    def once() -> None:
        os.write(go, b"g")
        have = 0
        while have < size:
            have += os.readv(data, [view[have:]])

    samples = timed(runs, WARMUP, once)
    os.close(go)
    os.waitpid(pid, 0)
    return samples


def pickle_alone(size: int, runs: int) -> list[float]:
    """``pickle.dumps(data, 5)`` + ``pickle.loads`` of ``size`` bytes, ``runs`` times."""
    data = b"x" * size
    return timed(runs, WARMUP, lambda: pickle.loads(pickle.dumps(data, 5)))


def pingpong(runs: int, placement: str) -> list[float]:
    """Round trips of a 4-byte message between this process and a child, through two pipes."""

    def serve(requests: int, replies: int) -> None:
        while data := os.read(requests, 64):
            os.write(replies, data)

    pid, to_child, from_child = fork_child(placement, serve)

    def once() -> None:
        os.write(to_child, b"ping")
        os.read(from_child, 64)

    samples = timed(runs, 500, once)
    os.close(to_child)
    os.waitpid(pid, 0)
    return samples


def runner(runs: int, placement: str, package_dir: str) -> list[float]:
    """Round trips of ``return 1`` through Snex's runner, with no BEAM."""

    def serve(requests: int, replies: int) -> None:
        # Above 4 first, so that neither end is clobbered, then onto 3 and 4 for the runner.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (requests, replies)]
        for target, fd in zip((3, 4), high):
            os.dup2(fd, target)
            os.close(fd)
        env = {**os.environ, "PYTHONPATH": package_dir}
        os.execve(sys.executable, [sys.executable, "-m", "snex"], env)

    sys.path.insert(0, package_dir)
    from snex.frames import HEADER as header
    from snex.runner import EVAL as eval_kind

    pid, to_runner, from_runner = fork_child(placement, serve)
    # An EVAL body: (env id, code, file, line, variables, capture output); 0 is the root env.
    body = pickle.dumps((0, "return 1", "<bench>", 0, {}, False), 5)
    ids = itertools.count(1)

    def read_frame() -> None:
        # Usually one read: a reply is a few bytes.
        data = os.read(from_runner, 65536)
        if len(data) < header.size:
            data += read_exact(header.size - len(data), from_runner)
        length, _, _ = header.unpack_from(data)
        if len(data) < 4 + length:
            read_exact(4 + length - len(data), from_runner)

    def once() -> None:
        os.write(to_runner, header.pack(9 + len(body), eval_kind, next(ids)) + body)
        read_frame()

    read_frame()  # HELLO
    samples = timed(runs, 500, once)
    os.close(to_runner)
    os.waitpid(pid, 0)
    return samples


def read_exact(n: int, fd: int = 0) -> bytes:
    """Reads exactly ``n`` bytes from ``fd`` (stdin); exits when it is closed."""
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def echo() -> None:
    """Echoes 4-byte length-prefixed packets from stdin to stdout until stdin closes."""
    while True:
        head = read_exact(4)
        body = read_exact(int.from_bytes(head, "big"))
        os.write(1, head + body)


def null_runner() -> None:
    """Speaks Snex's frame protocol on fds 3/4 and does nothing else (docs/protocol.md)."""
    from snex.frames import HEADER as header
    from snex.runner import CALL_FN, EVAL, HELLO, MAKE_ENV, REPLY_OK

    answers = {EVAL: pickle.dumps(1, 5), MAKE_ENV: pickle.dumps(None, 5)}
    answers[CALL_FN] = answers[MAKE_ENV]
    os.write(4, header.pack(9, HELLO, os.getpid()))
    pending = b""
    while chunk := os.read(3, 65536):
        pending += chunk
        replies = []
        # Every whole frame read so far; a partial one waits for the next read.
        while len(pending) >= header.size:
            length, kind, req_id = header.unpack_from(pending)
            if len(pending) < 4 + length:
                break
            pending = pending[4 + length :]
            if kind in answers:
                body = answers[kind]
                replies.append(header.pack(9 + len(body), REPLY_OK, req_id) + body)
        if replies:
            os.write(4, b"".join(replies))


def main(argv: list[str]) -> None:
    """Runs the mode named by ``argv[0]`` and prints its samples, one per line."""
    mode, args = argv[0], argv[1:]
    if mode == "echo":
        echo()
        return
    if mode == "null-runner":
        null_runner()
        return
    if mode == "cpus":
        print(pinnable_cpus())
        return
    if mode == "transfer":
        pipe_size = int(args[3]) if len(args) > 3 else 0
        samples = transfer(
            int(args[0]), int(args[1]), args[2], pipe_size, args[4:] == ["splice"]
        )
    elif mode == "pickle":
        samples = pickle_alone(int(args[0]), int(args[1]))
    elif mode == "pingpong":
        samples = pingpong(int(args[0]), args[1])
    elif mode == "runner":
        samples = runner(int(args[0]), args[1], args[2])
    else:
        sys.exit(f"unknown mode: {mode}")
    sys.stdout.write("".join(f"{s:.3f}\n" for s in samples))


if __name__ == "__main__":
    main(sys.argv[1:])
