defmodule Snex.Test.Money do
  @moduledoc false
  defstruct [:cents, :currency]
end

defmodule Snex.Test.Plain do
  @moduledoc false
  defstruct a: 1, b: "two"
end

defmodule Snex.Test.AsItself do
  @moduledoc false
  defstruct [:x]
end

defimpl Snex.Serde.Encoder, for: Snex.Test.Money do
  def encode(%{cents: cents, currency: c}),
    do:
      Snex.Serde.object("decimal", "Decimal", [
        "#{div(cents, 100)}.#{rem(cents, 100)} #{c}" |> String.split() |> hd()
      ])
end

defimpl Snex.Serde.Encoder, for: Snex.Test.AsItself do
  def encode(value), do: value
end

# Never used: the calendar structs of Calendar.ISO have a fixed encoding (common_values_test).
defimpl Snex.Serde.Encoder, for: Time do
  def encode(_time), do: "the Encoder of Time"
end
