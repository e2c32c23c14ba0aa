"""Harness for the Rust wire tests: drives the production ``snex`` package of the repository.

Usage: ``python harness.py MODE PYTHON_DIR`` where PYTHON_DIR holds the ``snex`` package (the
repository's ``python/``). Encoding is ``snex.codec.encode`` and decoding ``snex.codec.decode``,
exactly as the interpreter's runner does.

Modes:

* ``loads``: stdin has records ``(u32 BE len, expr utf-8, u32 BE len, pickle)``; for each,
  ``v = codec.decode(pickle)`` and one line: ``canon(v, True)`` if expr is empty, else
  ``repr(eval(expr))``, or ``ERR <type>: <message>``.
* ``dumps``: stdin has one Python expression per line; for each, one line:
  ``<hex of codec.encode(value)> <canon(value, False)>`` (``?`` for values ``canon`` cannot
  render) or ``ERR <type>: <message>``.
* ``raw``: like ``dumps``, but each expression evaluates to the pickle itself (``bytes``), for
  input the production encoder never writes; answers ``<hex> ?``.
* ``roundtrip``: like ``loads`` (without expr) but answers ``<hex of encode(decode(p))>``.
"""

import collections
import enum
import fractions  # noqa: F401 - for expressions
import os
import pickle  # noqa: F401 - for expressions
import random
import struct
import sys

MODE, PYTHON_DIR = sys.argv[1], os.path.abspath(sys.argv[2])
sys.path.insert(0, PYTHON_DIR)

import snex  # noqa: E402
from snex import _wire, codec  # noqa: E402, F401 - _wire is there for expressions

# The package under test must be the repository's, not one installed elsewhere.
if os.path.dirname(os.path.abspath(codec.__file__)) != os.path.join(PYTHON_DIR, "snex"):
    sys.exit(f"harness: snex.codec comes from {codec.__file__}, not from {PYTHON_DIR}")


def canon(o, exact):
    """The canonical rendering of `o` (see `canon` in mod.rs); `exact` keeps Python-only types."""
    c = lambda x: canon(x, exact)  # noqa: E731
    if o is None:
        return "N"
    if o is True:
        return "T"
    if o is False:
        return "F"
    if isinstance(o, snex.Atom):
        tag = "A" if exact and isinstance(o, snex.DistinctAtom) else "a"
        return tag + str.__str__(o).encode().hex()
    if isinstance(o, snex.Term):
        return "t" + o.etf.hex()
    if isinstance(o, int):
        return "i" + str(int(o))
    if isinstance(o, float):
        return "f" + struct.pack(">d", o).hex()
    if isinstance(o, str):
        return "s" + str.__str__(o).encode("utf-8", "surrogatepass").hex()
    if isinstance(o, bytearray):
        return ("y" if exact else "b") + bytes(o).hex()
    if isinstance(o, (bytes, memoryview)):
        return "b" + bytes(o).hex()
    if isinstance(o, list):
        return "[" + ",".join(map(c, o)) + "]"
    if isinstance(o, tuple):
        return "(" + ",".join(map(c, o)) + ")"
    if isinstance(o, dict):
        return "{" + ",".join(c(k) + ":" + c(v) for k, v in o.items()) + "}"
    if isinstance(o, (set, frozenset)):
        prefix = "F" if exact and isinstance(o, frozenset) else ""
        return prefix + "<" + ",".join(sorted(set(map(c, o)))) + ">"
    raise TypeError(f"cannot canon {type(o)!r}")


# Helpers for expressions.
class Color(enum.IntEnum):
    RED = 1
    BIG = 2**70


class Name(str):
    pass


class Ratio(float):
    pass


class Opaque:
    pass


Point = collections.namedtuple("Point", "x y")


def rec_list():
    l = [1]  # noqa: E741
    l.append(l)
    return l


def rec_dict():
    d = {"a": 1}
    d["self"] = [d]
    return d


def rec_tuple():
    l = []  # noqa: E741
    t = (l,)
    l.append(t)
    return t


def rand_value(seed, depth=0, rng=None):
    """A random value of the kinds Snex encodes, nested up to depth 4."""
    rng = rng or random.Random(seed)  # noqa: S311 - reproducible test data
    kinds = ["none", "bool", "int", "big", "float", "str", "bytes", "bytearray", "atom", "term"]
    if depth < 4:
        kinds += ["list", "tuple", "dict", "set", "frozenset", "shared"] * 2
    k = rng.choice(kinds)
    if k == "none":
        return None
    if k == "bool":
        return rng.random() < 0.5
    if k == "int":
        small = (0, 1, 255, 256, 65535, 65536, -1, -(2**31), 2**31, -(2**63), 2**63 - 1)
        return rng.choice([*small, rng.randint(-(2**40), 2**40)])
    if k == "big":
        return rng.choice([1, -1]) * rng.getrandbits(rng.randint(64, 3000))
    if k == "float":
        special = (0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"))
        return rng.choice([*special, rng.uniform(-1e300, 1e300)])
    if k == "str":
        return rng.choice(["", "a", "héllo", "日本", "x" * rng.randint(0, 300)])
    if k == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
    if k == "bytearray":
        return bytearray(rng.getrandbits(8) for _ in range(rng.randint(0, 5)))
    if k == "atom":
        return snex.Atom(rng.choice(["ok", "error", "x" * rng.randint(1, 10)]))
    if k == "term":
        return snex.Term(bytes([131, 97, rng.randint(0, 255)]))
    n = rng.randint(0, 6)

    def sub():
        return rand_value(seed, depth + 1, rng)

    if k == "list":
        return [sub() for _ in range(n)]
    if k == "tuple":
        return tuple(sub() for _ in range(n))
    if k == "dict":
        return {f"k{i}" if rng.random() < 0.7 else i: sub() for i in range(n)}
    if k == "set":
        return {f"s{i}" if rng.random() < 0.5 else (i, "t") for i in range(n)}
    if k == "frozenset":
        return frozenset(rng.randint(0, 1000) for _ in range(n))
    x = sub()  # "shared"
    return [x, (x, x), {"k": x}]


def read_exact(n):
    data = sys.stdin.buffer.read(n)
    if len(data) != n:
        raise EOFError
    return data


def read_record():
    head = sys.stdin.buffer.read(4)
    if not head:
        return None
    return read_exact(struct.unpack(">I", head)[0])


def error_line(e):
    message = str(e).replace("\n", " ")
    return f"ERR {type(e).__name__}: {message}\n"


def main():
    out = sys.stdout
    if MODE in ("dumps", "raw"):
        ns = dict(globals())
        for line in sys.stdin.read().splitlines():
            try:
                v = eval(line, ns)  # noqa: S307 - the tests' own expressions
                if MODE == "raw":
                    out.write(bytes(v).hex() + " ?\n")
                    continue
                data = codec.encode(v)
                try:
                    c = canon(v, False)
                except (TypeError, RecursionError):
                    c = "?"
                out.write(data.hex() + " " + c + "\n")
            except Exception as e:  # noqa: BLE001 - reported to the test
                out.write(error_line(e))
        return
    while True:
        expr = read_record()
        if expr is None:
            break
        data = read_record()
        try:
            v = codec.decode(data)
            if MODE == "roundtrip":
                out.write(codec.encode(v).hex() + "\n")
            elif expr:
                out.write(repr(eval(expr.decode(), dict(globals(), v=v))) + "\n")  # noqa: S307
            else:
                out.write(canon(v, True) + "\n")
        except Exception as e:  # noqa: BLE001 - reported to the test
            out.write(error_line(e))


main()
