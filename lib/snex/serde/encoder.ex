defprotocol Snex.Serde.Encoder do
  @moduledoc """
  Custom encoding of structs for Python.

  `encode/1` returns any term, which is encoded again; returning a struct of the same type means
  "encode it as a plain struct" (a `dict` with `"__struct__"`).

      defimpl Snex.Serde.Encoder, for: Decimal do
        def encode(d), do: Snex.Serde.object("decimal", "Decimal", [Decimal.to_string(d)])
      end

  `MapSet`, Snex's own wrappers (`Snex.Serde.float/1`, ...) and the calendar structs of
  `Calendar.ISO` (`Date`, `Time`, `NaiveDateTime`, `DateTime`) have a fixed encoding (see
  `Snex.Serde`): the protocol is not asked about them.
  """

  @doc "The term to send to Python instead of `value`."
  @spec encode(t()) :: term()
  def encode(value)
end
