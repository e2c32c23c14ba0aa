defmodule Snex.PropertyTest do
  use ExUnit.Case, async: true

  @moduletag timeout: 120_000

  setup_all do
    {:ok, interpreter} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(interpreter)
    {:ok, env: env}
  end

  # Hand-written generator of random nested terms of every supported type.
  defp gen(depth) do
    leaf = [nil, :bool, :int, :big, :float, :special, :string, :unicode, :atom, :opaque]
    nodes = if depth < 4, do: [:list, :tuple, :map, :set, :improper], else: []

    case Enum.random(leaf ++ nodes) do
      nil ->
        nil

      :bool ->
        Enum.random([true, false])

      :int ->
        Enum.random(-100_000..100_000)

      :big ->
        Enum.random([1, -1]) * Integer.pow(2, Enum.random(63..300)) + Enum.random(0..1000)

      :float ->
        Enum.random([0.0, -0.0, :rand.uniform() * 1.0e10, -:rand.uniform(), 1.0e-300])

      :special ->
        Enum.random([:inf, :"-inf", :nan])

      :string ->
        for(_ <- 1..Enum.random(0..20)//1, into: "", do: <<Enum.random(32..126)>>)

      :unicode ->
        for(
          _ <- 1..Enum.random(0..8)//1,
          into: "",
          do: <<Enum.random([0xE9, 0x3B1, 0x4E2D, 0x1F600])::utf8>>
        )

      :atom ->
        Enum.random([:a, :b, :ok, :error, :"with space", :été])

      :opaque ->
        Enum.random([self(), make_ref(), <<1::5>>])

      :list ->
        for(_ <- 1..Enum.random(0..6)//1, do: gen(depth + 1))

      :tuple ->
        List.to_tuple(for(_ <- 1..Enum.random(0..6)//1, do: gen(depth + 1)))

      :map ->
        Map.new(for(_ <- 1..Enum.random(0..5)//1, do: {gen_key(), gen(depth + 1)}))

      :set ->
        MapSet.new(for(_ <- 1..Enum.random(0..5)//1, do: gen_key()))

      :improper ->
        [gen(depth + 1) | gen_key()]
    end
  end

  defp gen_key,
    do:
      Enum.random([
        Enum.random(-50..50),
        "k#{Enum.random(1..50)}",
        Enum.random([:x, :y]),
        {1, "t"}
      ])

  # Special floats are sent as atoms and come back as atoms: both sides agree on :inf etc.
  test "2,000 random nested terms round-trip Elixir → Python → Elixir unchanged", %{env: env} do
    for i <- 1..2_000 do
      value = gen(0)

      assert {:ok, ^value} = Snex.pyeval(env, "return v", %{"v" => value}),
             "case #{i}: #{inspect(value, limit: :infinity)}"
    end
  end
end
