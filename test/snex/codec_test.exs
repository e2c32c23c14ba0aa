defmodule Snex.CodecTest do
  use Snex.InterpreterCase, async: true

  defp roundtrip(env, value), do: Snex.pyeval(env, "return v", %{"v" => value})

  defp python_repr(env, value),
    do: Snex.pyeval(env, "return repr(v)", %{"v" => value})

  test "core types round-trip unchanged", %{env: env} do
    values = [
      nil,
      true,
      false,
      :an_atom,
      :"with spaces",
      0,
      1,
      -1,
      255,
      256,
      65_535,
      65_536,
      2_147_483_647,
      -2_147_483_648,
      9_223_372_036_854_775_807,
      -9_223_372_036_854_775_808,
      2 ** 64,
      -(2 ** 100),
      123_456_789_012_345_678_901_234_567_890_123_456_789,
      0.0,
      1.5,
      -2.25,
      1.0e300,
      5.0e-324,
      "",
      "hello",
      "héllo wörld ✓ 🎉",
      String.duplicate("x", 100_000),
      [],
      [1, "two", :three, [4.0]],
      {},
      {1},
      {1, 2},
      {1, 2, 3},
      {1, 2, 3, 4, 5},
      %{},
      %{"a" => 1, "b" => [1, 2]},
      %{1 => "int key", :atom => "atom key", {1, 2} => "tuple key"},
      %{"nested" => %{"deeper" => [%{"k" => {1, nil}}]}}
    ]

    for value <- values do
      assert {:ok, ^value} = roundtrip(env, value)
    end
  end

  test "-0.0 keeps its sign", %{env: env} do
    {:ok, value} = roundtrip(env, -0.0)
    assert <<value::float>> == <<-0.0::float>>
    assert {:ok, "-0.0"} = python_repr(env, -0.0)
  end

  test "Python sees the right types", %{env: env} do
    assert {:ok, "None"} = python_repr(env, nil)
    assert {:ok, "True"} = python_repr(env, true)
    assert {:ok, "Atom('foo')"} = python_repr(env, :foo)
    assert {:ok, "'text'"} = python_repr(env, "text")
    assert {:ok, "[1, 2]"} = python_repr(env, [1, 2])
    assert {:ok, "(1, 'a')"} = python_repr(env, {1, "a"})
    assert {:ok, "{'k': 1.5}"} = python_repr(env, %{"k" => 1.5})
    assert {:ok, "1267650600228229401496703205376"} = python_repr(env, 2 ** 100)
  end

  test "atoms are equal to their names in Python", %{env: env} do
    assert {:ok, true} =
             Snex.pyeval(env, "return a == 'foo' and isinstance(a, snex.Atom)", %{"a" => :foo})
  end

  test "Python values come back as terms", %{env: env} do
    code = """
    return [None, True, False, 7, -2**70, 2.5, "s", b"b", bytearray(b"ba"), [1], (1, 2),
            {"k": "v"}, snex.Atom("atom"), float("inf"), float("-inf"), float("nan")]
    """

    assert {:ok,
            [
              nil,
              true,
              false,
              7,
              big,
              2.5,
              "s",
              "b",
              "ba",
              [1],
              {1, 2},
              %{"k" => "v"},
              :atom,
              :inf,
              :"-inf",
              :nan
            ]} = Snex.pyeval(env, code)

    assert big == -(2 ** 70)
  end

  test "a repeated map key and atom are decoded correctly", %{env: env} do
    rows = for i <- 1..1000, do: %{"id" => i, "kind" => :row}
    assert {:ok, ^rows} = roundtrip(env, rows)
  end

  test "deeply nested values", %{env: env} do
    deep = Enum.reduce(1..500, [], fn _, acc -> [acc] end)
    assert {:ok, ^deep} = roundtrip(env, deep)
  end
end
