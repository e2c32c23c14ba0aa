defprotocol Snex.Serde.Encoder do
  @moduledoc """
  Custom encoding of structs for Python.

  `encode/1` returns any term, which is encoded again; returning a struct of the same type means
  "encode it as a plain struct" (a `dict` with `"__struct__"`).

      defimpl Snex.Serde.Encoder, for: Date do
        def encode(date), do: Snex.Serde.object("datetime", "date", [date.year, date.month, date.day])
      end
  """

  @doc "The term to send to Python instead of `value`."
  @spec encode(t()) :: term()
  def encode(value)
end
