"""``Elixir.Enum.map(...)``-style proxies for calling BEAM functions."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from .interface import call, cast

if TYPE_CHECKING:
    from .encoding import EncodingOpts


class BeamModuleProxy:
    """A BEAM module: ``await BeamModuleProxy("erlang").phash2(x)`` calls ``:erlang.phash2(x)``.

    Attributes that start with an upper-case letter are nested modules
    (``Elixir.String.Chars``); others are functions. A function called with ``cast=True`` is a
    cast; ``node=`` runs it on another node; ``result_encoding_opts=`` (``snex.EncodingOpts``)
    override the interpreter's encoding options for its result.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        """A proxy for the module named `name` (e.g. ``"erlang"`` or ``"Elixir.Enum"``)."""
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(f"{self._name} proxies BEAM functions; no attribute {attr!r}")
        if attr[:1].isupper():
            return BeamModuleProxy(f"{self._name}.{attr}")
        return _BeamFunction(self._name, attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self._name} is a module, not a function: call one of its functions, "
            f"e.g. {self._name}.some_function(...)"
        )

    def __repr__(self) -> str:
        return f"BeamModuleProxy({self._name!r})"


class _BeamFunction:
    __slots__ = ("_function", "_module")

    def __init__(self, module: str, function: str) -> None:
        self._module = module
        self._function = function

    def __call__(
        self,
        *args: Any,
        cast: bool = False,
        node: str | None = None,
        result_encoding_opts: EncodingOpts | Mapping[str, Any] | None = None,
    ) -> Awaitable[Any]:
        if cast:
            return _cast(self._module, self._function, args, node)
        return call(
            self._module,
            self._function,
            list(args),
            node=node,
            result_encoding_opts=result_encoding_opts,
        )

    def __repr__(self) -> str:
        return f"<BEAM function {self._module}.{self._function}>"


async def _cast(module: str, function: str, args: tuple[Any, ...], node: str | None) -> None:
    await cast(module, function, list(args), node=node)


Elixir = BeamModuleProxy("Elixir")
"""The root of Elixir modules: ``await Elixir.Enum.sum([1, 2])``."""
