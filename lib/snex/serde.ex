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
  | `Date`, `Time`, `NaiveDateTime` | `datetime.date`, `datetime.time`, naive `datetime.datetime` |
  | `DateTime` | aware `datetime.datetime`: see "Dates and times" |
  | structs | `Snex.Serde.Encoder` result if implemented, else a `dict` with `"__struct__"` |
  | `object/3` | the result of calling `module.name(*args)` in Python |
  | `term/1`, pids, refs, ports, funs, bitstrings | `snex.Term`: opaque, comes back as the same term |

  ## Python → Elixir

  `None`/`True`/`False` → `nil`/booleans; `snex.Atom` (and subclasses) → atoms; `int` (and
  subclasses such as `IntEnum`) → integers; `float` → floats, with `inf`, `-inf`, NaN → `:inf`,
  `:"-inf"`, `:nan`; `str`, `bytes`, `bytearray`, `memoryview` → binaries; `list` → list;
  `tuple` (and namedtuples) → tuple; `dict` → map (a `dict` with the key `Atom("__struct__")`
  becomes that struct); `set`/`frozenset` → `MapSet`; `snex.Term` → its term.

  Common values that are not built-in types, without importing the libraries that define them:

  * anything registered with `numbers.Integral` (numpy's integer scalars, for example) →
    integers;
  * anything registered with `numbers.Real` (numpy's float scalars, `fractions.Fraction`) →
    floats, when the value is exactly a float; otherwise (`Fraction(1, 3)`, numpy's
    `longdouble`) an `:encode_error`: nothing is rounded silently;
  * numpy's bool (`numpy.bool_`) → booleans;
  * `decimal.Decimal` → its exact string, `str(d)` (`"1.10"`, `"1E+3"`, `"NaN"`), which
    `Decimal.new/1` of the `decimal` package reads;
  * `datetime.date`, `datetime.time`, naive and aware `datetime.datetime` → `Date`, `Time`,
    `NaiveDateTime`, `DateTime` (see "Dates and times"); an aware `time` is an `:encode_error`.

  Arrays of numbers through the buffer protocol (numpy arrays of ints, floats or bools,
  `array.array`) → binaries of their bytes in C order, unless a custom encoder is set (it gets
  them first). From 64 KiB, these, `memoryview`s, and a result that is itself `bytes` travel
  next to the message rather than inside it and become binaries without a copy.

  Anything else goes to the function set with `snex.set_custom_encoder(fun)` (its result is
  encoded again), or is an `:encode_error` that says where the value was and, for the usual
  mistakes, what to do:

      Cannot serialize object of coroutine at result[3]['rows'][0]: did you forget `await`?

  The path is a Python expression from `result` (what the code returned; `data` and `args` for
  `snex.send` and `snex.call`); dict keys and set items are named by their position,
  `list(result)[2]`. Other numpy arrays (of objects, strings) get a hint at `.tolist()`.

  ## Dates and times

  Only structs of `Calendar.ISO` are converted; with other calendars they are structs like any
  other.

  * Python has microseconds and no precision: `~T[12:00:00.123]` comes back as
    `~T[12:00:00.123000]` (`microsecond: {123000, 6}`), and a Python value without
    microseconds has precision 0, as its `isoformat()` shows.
  * `DateTime` → Python: `Etc/UTC` gives `tzinfo=datetime.timezone.utc`. Another zone gives
    `zoneinfo.ZoneInfo(time_zone)` when Python knows the zone and it has the same UTC offset
    at that time (the offsets pick the right one of an ambiguous hour); otherwise a fixed
    `datetime.timezone` of `utc_offset + std_offset` named `zone_abbr`.
  * aware `datetime` → Elixir: a `zoneinfo.ZoneInfo` zone (any `tzinfo` with a string `key`)
    is kept: `time_zone` is its key, `zone_abbr` its `tzname()`, `std_offset` its `dst()`.
    The names of UTC (`"UTC"`, `"Etc/UTC"`, ...) and every other `tzinfo`
    (`datetime.timezone`, other libraries) give a `DateTime` in `Etc/UTC` at the same
    instant, as `DateTime.from_iso8601/1` does with an offset.

  So a `Date`, `Time` or `NaiveDateTime`, a `DateTime` in UTC and (where Python has the time
  zone database) a `DateTime` in a zone, sent to Python and returned, come back unchanged up to
  the microsecond precision; a `DateTime` in a zone Python does not know comes back as the same
  instant in UTC. These structs are converted before the `Snex.Serde.Encoder` protocol is
  looked at.

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
