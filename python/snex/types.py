"""Python-side types of Elixir values: atoms and opaque terms."""

from __future__ import annotations

from typing import Any


class Atom(str):
    """An Elixir atom. Equal to the `str` of the same name: ``Atom("ok") == "ok"``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),))


class DistinctAtom(Atom):
    """An Elixir atom equal only to a `DistinctAtom` of the same name."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DistinctAtom) and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((DistinctAtom, str(self)))

    def __repr__(self) -> str:
        return f"DistinctAtom({str.__repr__(self)})"


class Term:
    """An opaque Elixir term (pid, reference, function, ...): comes back to Elixir unchanged."""

    __slots__ = ("etf",)

    def __init__(self, etf: bytes) -> None:
        """Wraps the term's external term format."""
        self.etf = bytes(etf)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Term) and self.etf == other.etf

    def __hash__(self) -> int:
        return hash((Term, self.etf))

    def __repr__(self) -> str:
        return f"Term({self.etf!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Term, (self.etf,))


class ElixirError(Exception):
    """An Elixir raise, throw or exit in a `snex.call`; the message is the formatted error."""


class EncodeError(Exception):
    """A Python value that cannot be sent to Elixir."""
