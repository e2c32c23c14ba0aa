"""Where an unencodable value sits in what was being encoded, and what usually fixes it.

Used only after an encode has failed: `locate` walks the value again, in the order the pickler
wrote it, and names the first object that cannot be encoded by a Python expression
(``result[3]['rows'][0]``). The walk is iterative (no recursion limit) and visits each
container once (recursive structures end).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .types import Atom, EncodeError, Term

#: What the encoder writes with nothing inside to look at: None and Snex's types...
MARKED: tuple[type, ...] = (type(None), Atom, Term, memoryview)
#: ... and built-in scalars, their subclasses as the base type (the first that matches).
SCALARS: tuple[type, ...] = (bool, int, float, str, bytes, bytearray)
#: Built-in containers, their subclasses as the base type (the first that matches).
CONTAINERS: tuple[type, ...] = (list, tuple, dict, set, frozenset)
# Dict keys (str, bytes, int) shown as ``[key]`` in a path when their repr is at most this
# long; other keys by position.
_MAX_KEY_REPR = 40
# Substitutions of one object looked at, at most (the encoder's own limit is lower).
_MAX_ROUNDS = 64

Substitute = Callable[[Any], Any]


class Unencodable(EncodeError):
    """An object that cannot be encoded: ``Cannot serialize <what>[: <advice>]``; the encoder
    adds where the object was."""

    def __init__(self, what: str, advice: str | None = None) -> None:
        """`what` names the object (``"object of coroutine"``), `advice` says what to do."""
        super().__init__(f"Cannot serialize {what}" + (f": {advice}" if advice else ""))
        self.what = what
        self.advice = advice


def type_name(obj: Any) -> str:
    """The qualified name of `obj`'s type (without ``builtins.``)."""
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def locate(
    value: Any, root: str | Sequence[str], substitute: Substitute
) -> tuple[str, Any, Exception] | None:
    """The path to the first object in `value` that cannot be encoded, that object, and what
    was raised there; ``None`` if the walk finds nothing.

    `root` names `value` in the path; a sequence of names stands for the items of a tuple
    `value` of that length (``("to", "data")`` gives paths like ``data['x']``).
    `substitute(obj)` is what the encoder does with an object that is neither a built-in type
    nor a Snex type (the common values, the custom encoder): it returns the value that is
    encoded instead, or raises. It is called again here, so a custom encoder runs twice for
    the objects visited.
    """
    stack: list[tuple[Any, str]] = []
    if isinstance(root, str):
        stack.append((value, root))
    elif type(value) is tuple and len(value) == len(root):
        stack.extend(reversed(list(zip(value, root, strict=True))))
    else:
        stack.append((value, "value"))
    seen: dict[int, Any] = {}  # id -> the container, kept alive so that its id is not reused
    while stack:
        obj, path = stack.pop()
        try:
            children = _children(obj, path, substitute, seen)
        except Exception as e:  # noqa: BLE001 - the value's own code raised: that is the answer
            return path, obj, e
        stack.extend(reversed(children))
    return None


def _children(
    obj: Any, path: str, substitute: Substitute, seen: dict[int, Any]
) -> list[tuple[Any, str]]:
    if _is_leaf(obj):
        return []
    base = _container_base(obj)
    rounds = 0
    while base is None:
        if rounds == _MAX_ROUNDS:
            return []  # the encoder gives up after fewer rounds: not here
        obj = substitute(obj)  # may give what needs substituting again (a date, say)
        if _is_leaf(obj):
            return []
        base = _container_base(obj)
        rounds += 1
    if id(obj) in seen:
        return []
    seen[id(obj)] = obj
    if type(obj) is not base:
        obj = base(obj)  # what the encoder does with a subclass: may raise, as it did there
    if base is dict:
        return list(_dict_children(obj, path))
    if base in (list, tuple):
        return [(item, f"{path}[{i}]") for i, item in enumerate(obj)]
    return [(item, f"list({path})[{i}]") for i, item in enumerate(obj)]


def _is_leaf(obj: Any) -> bool:
    if isinstance(obj, MARKED):
        return True
    for base in SCALARS:
        if isinstance(obj, base):
            if type(obj) is not base:
                base(obj)  # what the encoder does with a subclass: may raise, as it did there
            return True
    return False


def _container_base(obj: Any) -> type | None:
    for base in CONTAINERS:
        if isinstance(obj, base):
            return base
    return None


def _dict_children(d: dict[Any, Any], path: str) -> Iterator[tuple[Any, str]]:
    for i, (key, item) in enumerate(d.items()):
        yield key, f"list({path})[{i}]"
        shown = _key_repr(key)
        yield item, f"{path}[{shown}]" if shown else f"list({path}.values())[{i}]"


def _key_repr(key: Any) -> str | None:
    if key is None or isinstance(key, bool):
        return repr(bool(key)) if key is not None else "None"
    if isinstance(key, str):
        text = str.__repr__(key)
    elif isinstance(key, bytes):
        text = bytes.__repr__(key)
    elif isinstance(key, int):
        text = int.__repr__(key)
    else:
        return None
    return text if len(text) <= _MAX_KEY_REPR else None


def hint(obj: Any) -> str | None:
    """The usual fix when `obj` cannot be encoded, if there is a well-known one."""
    import numbers  # only after an encode failed: start-up does not pay for it

    if inspect.isawaitable(obj):
        return "did you forget `await`?"
    if isinstance(obj, (types.GeneratorType, types.AsyncGeneratorType)):
        return "collect its items first, e.g. list(...), or return it from Snex.stream"
    if isinstance(obj, numbers.Complex):
        return "Elixir has no complex numbers; send (z.real, z.imag)"
    t = type(obj)
    if t.__module__ == "numpy":
        if t.__name__ == "ndarray":
            return "only arrays of numbers become binaries: convert it with .tolist()"
        if callable(getattr(obj, "item", None)):
            return "convert it to a Python value with .item()"
    return None
