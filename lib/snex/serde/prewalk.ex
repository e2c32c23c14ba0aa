defmodule Snex.Serde.Prewalk do
  @moduledoc false
  # Applies the `Snex.Serde.Encoder` protocol throughout a term, for the NIF's encoder. The NIF
  # asks for this (`:protocol`) only when a term holds a struct other than `MapSet` and Snex's
  # own wrappers, so terms without structs never pay for a walk in Elixir.

  alias Snex.Serde

  @own [MapSet, Serde.Float, Serde.Binary, Serde.Term]
  # Converted by the NIF whatever the protocol says, when their calendar is Calendar.ISO.
  @calendar [Date, Time, NaiveDateTime, DateTime]

  @doc "The term with every struct that implements `Snex.Serde.Encoder` replaced by its encoding."
  @spec resolve(term()) :: term()
  def resolve(%module{} = struct) when module in @own, do: struct
  def resolve(%module{calendar: Calendar.ISO} = struct) when module in @calendar, do: struct
  def resolve(%Serde.Object{args: args} = object), do: %{object | args: resolve(args)}

  def resolve(%module{} = struct) do
    case Serde.Encoder.impl_for(struct) do
      nil ->
        plain(struct)

      impl ->
        case impl.encode(struct) do
          # The same struct type back means: encode it as a plain struct.
          %^module{} = same -> plain(same)
          other -> resolve(other)
        end
    end
  end

  def resolve(map) when is_map(map), do: Map.new(map, fn {k, v} -> {resolve(k), resolve(v)} end)
  def resolve(list) when is_list(list), do: resolve_list(list)

  def resolve(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&resolve/1) |> List.to_tuple()

  def resolve(other), do: other

  defp plain(%module{} = struct) do
    struct |> Map.from_struct() |> resolve() |> Map.put(:__struct__, module)
  end

  # Tail-recursive, so that a long list does not grow the stack (whose every frame each garbage
  # collection would scan). Improper lists keep their tail (they travel as opaque terms).
  defp resolve_list(list), do: resolve_list(list, [])

  defp resolve_list([head | tail], acc), do: resolve_list(tail, [resolve(head) | acc])
  defp resolve_list([], acc), do: :lists.reverse(acc)
  defp resolve_list(tail, acc), do: :lists.reverse(acc, tail)
end
