defmodule Snex.Serde do
  @moduledoc """
  How values cross between Elixir and Python.

  ## Elixir → Python

  | Elixir | Python |
  |---|---|
  | `nil`, `true`, `false` | `None`, `True`, `False` |
  | other atoms | `snex.Atom` (a `str` subclass equal to its name); `snex.DistinctAtom` with `atom_as: :distinct_atom` |
  | integers | `int` (any size) |
  | floats | `float`, bit-exact; `float/1` takes any float, and gives `inf`, `-inf` and `nan` |
  | binaries | `str` (must be UTF-8); `bytes` or `bytearray` with `binary_as:`; `binary/2` per value |
  | lists, tuples, maps | `list`, `tuple`, `dict` (improper lists: `snex.Term`) |
  | `MapSet` | `set`, or `frozenset` with `set_as: :frozenset` |
  | structs | `Snex.Serde.Encoder` result if implemented, else a `dict` with `"__struct__"` |
  | `object/3` | the result of calling `module.name(*args)` in Python |
  | `term/1`, pids, refs, ports, funs, bitstrings | `snex.Term`: opaque, comes back as the same term |

  ## Python → Elixir

  `None`/`True`/`False` → `nil`/booleans; `snex.Atom` (and subclasses) → atoms; `int` (and
  subclasses such as `IntEnum`) → integers; `float` → floats, with `inf`, `-inf`, NaN → `:inf`,
  `:"-inf"`, `:nan`; `str`, `bytes`, `bytearray`, `memoryview` → binaries; `list` → list;
  `tuple` (and namedtuples) → tuple; `dict` → map (a `dict` with the key `Atom("__struct__")`
  becomes that struct); `set`/`frozenset` → `MapSet`; `snex.Term` → its term; anything else →
  the function set with `snex.set_custom_encoder(fun)`, or an `:encode_error`.

  ## Encoding options

  * `binary_as:` `:str` (default), `:bytes` or `:bytearray`;
  * `set_as:` `:set` (default) or `:frozenset`;
  * `atom_as:` `:atom` (default) or `:distinct_atom`.

  Precedence: defaults < the interpreter's `:encoding_opts` < the call's `:encoding_opts`.
  Invalid options raise `ArgumentError`.
  """

  @typedoc "A special float value."
  @type special_float :: :inf | :"-inf" | :nan

  defmodule Float do
    @moduledoc "A float for Python, special values included (see `Snex.Serde.float/1`)."
    @enforce_keys [:value]
    defstruct [:value]
    @type t :: %__MODULE__{value: float() | Snex.Serde.special_float()}
  end

  defmodule Binary do
    @moduledoc "Binary data with its Python type (see `Snex.Serde.binary/2`)."
    @enforce_keys [:data, :as]
    defstruct [:data, :as]
    @type t :: %__MODULE__{data: iodata(), as: :str | :bytes | :bytearray}
  end

  defmodule Object do
    @moduledoc "A Python object built by a call in Python (see `Snex.Serde.object/3`)."
    @enforce_keys [:module, :name, :args]
    defstruct [:module, :name, :args]
    @type t :: %__MODULE__{module: String.t(), name: String.t(), args: list()}
  end

  defmodule Term do
    @moduledoc "A term passed to Python as an opaque `snex.Term` (see `Snex.Serde.term/1`)."
    @enforce_keys [:value]
    defstruct [:value]
    @type t :: %__MODULE__{value: term()}
  end

  @doc """
  A Python `float`: any Elixir float (unchanged, bit-exact), or `float("inf")`,
  `float("-inf")` or `float("nan")` for `:inf`, `:"-inf"` and `:nan`, which Elixir floats
  cannot hold.
  """
  @spec float(float() | special_float()) :: Float.t()
  def float(value) when is_float(value) or value in [:inf, :"-inf", :nan],
    do: %Float{value: value}

  def float(other),
    do:
      raise(
        ArgumentError,
        "expected a float, :inf, :\"-inf\" or :nan, got: #{inspect(other)}"
      )

  @doc """
  Sends `iodata` as a Python `str` (must be UTF-8), `bytes` or `bytearray`, whatever the
  `binary_as` option. The iodata is written out directly, without being flattened first.
  """
  @spec binary(iodata(), :str | :bytes | :bytearray) :: Binary.t()
  def binary(data, as \\ :bytes)

  def binary(data, as)
      when as in [:str, :bytes, :bytearray] and (is_binary(data) or is_list(data)),
      do: %Binary{data: data, as: as}

  def binary(data, as),
    do:
      raise(
        ArgumentError,
        "expected iodata and :str | :bytes | :bytearray, got: #{inspect({data, as})}"
      )

  @doc """
  The result of `module.name(*args)` in Python, e.g.
  `Snex.Serde.object("datetime", "date", [2024, 1, 31])`. `name` may be dotted
  (`"Decimal.from_float"`).
  """
  @spec object(String.t(), String.t(), list()) :: Object.t()
  def object(module, name, args) when is_binary(module) and is_binary(name) and is_list(args),
    do: %Object{module: module, name: name, args: args}

  def object(module, name, args),
    do:
      raise(
        ArgumentError,
        "expected (string, string, list), got: #{inspect({module, name, args})}"
      )

  @doc "Passes `term` to Python as an opaque `snex.Term`; it comes back as the same term."
  @spec term(term()) :: Term.t()
  def term(term), do: %Term{value: term}
end
