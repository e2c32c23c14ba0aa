defmodule Snex.SerdeTest do
  use Snex.InterpreterCase, async: true

  alias Snex.{Error, Serde}
  alias Snex.Test.{AsItself, Money, Plain}

  defp type_of(env, value, opts \\ []),
    do: Snex.pyeval(env, "return type(v).__name__", %{"v" => value}, encoding_opts: opts)

  test "binary_as, set_as and atom_as", %{env: env} do
    assert {:ok, "str"} = type_of(env, "x")
    assert {:ok, "bytes"} = type_of(env, "x", binary_as: :bytes)
    assert {:ok, "bytearray"} = type_of(env, "x", binary_as: :bytearray)
    assert {:ok, "set"} = type_of(env, MapSet.new([1]))
    assert {:ok, "frozenset"} = type_of(env, MapSet.new([1]), set_as: :frozenset)
    assert {:ok, "Atom"} = type_of(env, :a)
    assert {:ok, "DistinctAtom"} = type_of(env, :a, atom_as: :distinct_atom)

    assert {:ok, [false, true]} =
             Snex.pyeval(env, "return [v == 'a', isinstance(v, snex.Atom)]", %{"v" => :a},
               encoding_opts: [atom_as: :distinct_atom]
             )

    assert_raise ArgumentError, fn -> type_of(env, 1, binary_as: :nope) end
    assert_raise ArgumentError, fn -> type_of(env, 1, nope: :str) end
  end

  test "interpreter encoding_opts, overridden per call" do
    {:ok, i} =
      start_supervised(
        {Snex.Interpreter,
         encoding_opts: [binary_as: :bytes],
         init_script: {"init_type = type(v).__name__", %{"v" => "x"}}},
        id: :bytes_interp
      )

    assert {:ok, "bytes"} = Snex.pyeval(i, "return init_type")
    assert {:ok, "bytes"} = Snex.pyeval(i, "return type(v).__name__", %{"v" => "x"})

    assert {:ok, "str"} =
             Snex.pyeval(i, "return type(v).__name__", %{"v" => "x"},
               encoding_opts: [binary_as: :str]
             )

    # snex.call results use the interpreter's options too.
    assert {:ok, "bytes"} =
             Snex.pyeval(
               i,
               "return type(await snex.call('erlang', 'list_to_binary', [[104]])).__name__"
             )
  end

  test "MapSet round trip, sets back as MapSet", %{env: env} do
    set = MapSet.new([1, "a", :b, {1, 2}])
    assert {:ok, ^set} = Snex.pyeval(env, "return v", %{"v" => set})
    assert {:ok, ^set} = Snex.pyeval(env, "return frozenset(v)", %{"v" => set})
  end

  test "structs go as dicts with __struct__ and come back", %{env: env} do
    s = %Plain{}

    assert {:ok, [true, 1]} =
             Snex.pyeval(env, "return [v['__struct__'] == 'Elixir.Snex.Test.Plain', v['a']]", %{
               "v" => s
             })

    assert {:ok, ^s} = Snex.pyeval(env, "return v", %{"v" => s})

    assert {:ok, %Plain{a: 5}} =
             Snex.pyeval(
               env,
               "return {snex.Atom('__struct__'): snex.Atom('Elixir.Snex.Test.Plain'), snex.Atom('a'): 5, snex.Atom('b'): 'two'}"
             )
  end

  test "Encoder protocol: result encoded again; same struct type means plain", %{env: env} do
    assert {:ok, "Decimal"} = type_of(env, %Money{cents: 1250, currency: "EUR"})
    assert {:ok, "12.50"} = Snex.pyeval(env, "return str(v)", %{"v" => %Money{cents: 1250}})
    assert {:ok, [%AsItself{x: 1}]} = Snex.pyeval(env, "return v", %{"v" => [%AsItself{x: 1}]})
    # Nested in other data, and in init-script vars and call results.
    assert {:ok, ["Decimal"]} =
             Snex.pyeval(env, "return [type(x).__name__ for x in v['items']]", %{
               "v" => %{"items" => [%Money{cents: 1, currency: "EUR"}]}
             })
  end

  test "Snex.Serde helpers", %{env: env} do
    assert {:ok, ["inf", "-inf", "nan"]} =
             Snex.pyeval(env, "return [repr(x) for x in v]", %{
               "v" => [Serde.float(:inf), Serde.float(:"-inf"), Serde.float(:nan)]
             })

    assert {:ok, [b1, b2, b3]} =
             Snex.pyeval(env, "return [repr(x) for x in v]", %{
               "v" => [
                 Serde.binary(["ab", ?c, ["d"]], :bytes),
                 Serde.binary("é", :str),
                 Serde.binary("z", :bytearray)
               ]
             })

    assert {b1, b2, b3} == {"b'abcd'", "'é'", "bytearray(b'z')"}

    assert {:error, %Error{code: :encode_error}} =
             Snex.pyeval(env, "return 1", %{"v" => Serde.binary(<<255>>, :str)})

    assert {:ok, "2024-01-31"} =
             Snex.pyeval(env, "return v.isoformat()", %{
               "v" => Serde.object("datetime", "date", [2024, 1, 31])
             })

    assert {:ok, "Term"} = type_of(env, Serde.term("kept as is"))
    assert {:ok, "kept as is"} = Snex.pyeval(env, "return v", %{"v" => Serde.term("kept as is")})
    assert_raise ArgumentError, fn -> Serde.float(:other) end
  end

  test "opaque terms round-trip", %{env: env} do
    ref = make_ref()
    fun = fn x -> x end
    port = Port.list() |> hd()
    values = [self(), ref, fun, port, <<1::3>>, [1 | 2]]
    assert {:ok, ^values} = Snex.pyeval(env, "return v", %{"v" => values})
    assert {:ok, "Term"} = type_of(env, self())
  end

  test "Python types back to Elixir", %{env: env} do
    code = """
    import enum, collections, array
    class E(enum.IntEnum):
        A = 3
    P = collections.namedtuple("P", "x y")
    return [E.A, P(1, 2), memoryview(b"mv"), memoryview(array.array("h", [1])), snex.DistinctAtom("d")]
    """

    assert {:ok, [3, {1, 2}, "mv", <<1, 0>>, :d]} = Snex.pyeval(env, code)
  end

  test "custom encoder in Python", %{env: env} do
    code = """
    class Pt:
        def __init__(self, x): self.x = x
    snex.set_custom_encoder(lambda o: {"x": o.x} if isinstance(o, Pt) else o)
    return [Pt(1)]
    """

    assert {:ok, [%{"x" => 1}]} = Snex.pyeval(env, code)
    {:ok, nil} = Snex.pyeval(env, "snex.set_custom_encoder(None)")
    assert {:error, %Error{code: :encode_error}} = Snex.pyeval(env, "return Pt(1)")
  end

  describe "errors of one call leave the interpreter serving" do
    test "unencodable Python value names the type", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "import threading\nreturn threading.Lock()")

      assert reason =~ "lock"
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end

    test "invalid UTF-8 for str", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "return 1", %{"v" => [<<"ok">>, <<0xC3, 0x28>>]})

      assert reason =~ "UTF-8"
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end

    test "unhashable dict keys", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "return 1", %{"v" => %{[1] => 2}})

      assert reason =~ "unhashable"
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end

    test "a reply that cannot be decoded", %{env: env} do
      assert {:error, %Error{code: :decode_error}} = Snex.pyeval(env, "return {b'a': 1, 'a': 2}")
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end
  end
end
