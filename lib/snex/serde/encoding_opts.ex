defmodule Snex.Serde.EncodingOpts do
  @moduledoc false
  # Validation, merging and packing of encoding options (see `Snex.Serde`).
  # Packed form (read by the NIF): bits 0-1 binary_as (0 str, 1 bytes, 2 bytearray),
  # bit 2 set_as frozenset, bit 3 atom_as distinct_atom; bits 4, 5, 6 say that binary_as,
  # set_as, atom_as were given. The NIF takes the given ones over the interpreter's defaults,
  # so callers never need to look the defaults up.

  @allowed %{
    binary_as: [:str, :bytes, :bytearray],
    set_as: [:set, :frozenset],
    atom_as: [:atom, :distinct_atom]
  }

  @doc "Raises `ArgumentError` unless `opts` is a keyword list of valid encoding options."
  @spec validate!(term()) :: keyword()
  def validate!(opts) when is_list(opts) do
    Enum.each(opts, fn
      {key, value} when is_map_key(@allowed, key) ->
        unless value in @allowed[key] do
          raise ArgumentError,
                "invalid value #{inspect(value)} for encoding option #{inspect(key)}; " <>
                  "expected one of #{inspect(@allowed[key])}"
        end

      other ->
        raise ArgumentError,
              "invalid encoding option #{inspect(other)}; " <>
                "expected :binary_as, :set_as or :atom_as"
    end)

    opts
  end

  def validate!(other),
    do: raise(ArgumentError, "encoding_opts must be a keyword list, got: #{inspect(other)}")

  @doc "Later options override earlier ones."
  @spec merge(keyword(), keyword()) :: keyword()
  def merge(base, override), do: Keyword.merge(base, validate!(override))

  @doc """
  The packed `:encoding_opts` of a request's options (`[]` when absent); raises
  `ArgumentError` when they are invalid.
  """
  @spec packed!(keyword()) :: non_neg_integer()
  def packed!(opts), do: opts |> Keyword.get(:encoding_opts, []) |> validate!() |> pack()

  @doc "The packed integer the NIF reads (only the options given are marked as set)."
  @spec pack(keyword()) :: non_neg_integer()
  def pack(opts) do
    Enum.reduce(opts, 0, fn
      {:binary_as, :str}, acc -> Bitwise.bor(acc, 0x10)
      {:binary_as, :bytes}, acc -> Bitwise.bor(acc, 0x11)
      {:binary_as, :bytearray}, acc -> Bitwise.bor(acc, 0x12)
      {:set_as, :set}, acc -> Bitwise.bor(acc, 0x20)
      {:set_as, :frozenset}, acc -> Bitwise.bor(acc, 0x24)
      {:atom_as, :atom}, acc -> Bitwise.bor(acc, 0x40)
      {:atom_as, :distinct_atom}, acc -> Bitwise.bor(acc, 0x48)
    end)
  end
end
