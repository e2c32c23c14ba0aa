defmodule Snex.LargeValuesTest do
  # Values past every fast path (maps over 32 keys are hash maps in the BEAM, big sets, deep
  # and wide structures) cross from Python in each direction it can send them: as a result,
  # as `snex.call` arguments and as `snex.send` messages; the interpreter serves on after each.
  use Snex.InterpreterCase, async: true

  def echo(value), do: value

  # Python expressions, and (as a function, built at run time) what Elixir must get for each.
  @cases [
    {"int-keyed dict of 33", "{i: i for i in range(33)}", quote(do: Map.new(0..32, &{&1, &1}))},
    {"int-keyed dict of 200", "{i: i for i in range(200)}",
     quote(do: Map.new(0..199, &{&1, &1}))},
    {"str-keyed dict of 10 000", "{str(i): i for i in range(10_000)}",
     quote(do: Map.new(0..9_999, &{Integer.to_string(&1), &1}))},
    {"int-keyed dict of 100 000", "{i: -i for i in range(100_000)}",
     quote(do: Map.new(0..99_999, &{&1, -&1}))},
    {"str-keyed dict of 100 000", "{str(i): i for i in range(100_000)}",
     quote(do: Map.new(0..99_999, &{Integer.to_string(&1), &1}))},
    {"set of 50 000", "set(range(50_000))", quote(do: MapSet.new(0..49_999))},
    {"list of 10 000 dicts of 40 keys",
     "[{f'k{j}': i for j in range(40)} for i in range(10_000)]",
     quote(do: for(i <- 0..9_999, do: Map.new(0..39, &{"k#{&1}", i})))},
    {"dict of 10 000 dicts of 40 keys", "{i: {j: j for j in range(40)} for i in range(10_000)}",
     quote(do: Map.new(0..9_999, fn i -> {i, Map.new(0..39, &{&1, &1})} end))},
    {"tuple of 1 M", "tuple(range(1_000_000))",
     quote(do: List.to_tuple(Enum.to_list(0..999_999)))}
  ]

  for {{name, expr, expected}, index} <- Enum.with_index(@cases) do
    @expr expr
    defp expected(unquote(index)), do: unquote(expected)

    test "#{name}: as a result", %{env: env} do
      assert {:ok, value} = Snex.pyeval(env, "return #{@expr}", timeout: 60_000)
      assert value == expected(unquote(index))
      assert {:ok, 2} = Snex.pyeval(env, "return 1 + 1")
    end

    test "#{name}: as a snex.call argument", %{env: env} do
      # Elixir gets the value, and sends it back to Python unchanged.
      assert {:ok, true} =
               Snex.pyeval(
                 env,
                 """
                 value = #{@expr}
                 back = await snex.call("Elixir.Snex.LargeValuesTest", "echo", [value])
                 return back == value
                 """,
                 timeout: 60_000
               )

      assert {:ok, 2} = Snex.pyeval(env, "return 1 + 1")
    end

    test "#{name}: as a snex.send message", %{env: env} do
      {:ok, nil} =
        Snex.pyeval(env, "await snex.send(me, ('large', #{@expr}))", %{"me" => self()},
          timeout: 60_000
        )

      assert_receive {"large", value}, 60_000
      assert value == expected(unquote(index))
      assert {:ok, 2} = Snex.pyeval(env, "return 1 + 1")
    end
  end

  test "large binaries and strings arrive exact, alone and among other values", %{env: env} do
    assert {:ok, [big, small, text, [nested]]} =
             Snex.pyeval(env, """
             return [b'x' * 300_000 + b'y', b'z', 'é' * 100_000, [bytearray(b'q' * 70_000)]]
             """)

    assert big == :binary.copy("x", 300_000) <> "y"
    assert small == "z"
    assert text == String.duplicate("é", 100_000)
    assert nested == :binary.copy("q", 70_000)
  end
end
