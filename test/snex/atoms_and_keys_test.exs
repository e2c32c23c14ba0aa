defmodule Snex.AtomsAndKeysTest do
  # Atoms of any Unicode text cross both ways; keys that are different in Elixir but equal in
  # Python are refused instead of silently merged. (That Python cannot fill the atom table:
  # Snex.AtomTableTest, below.)
  use Snex.InterpreterCase, async: true

  describe "atoms beyond Latin-1" do
    test "cross from Elixir as snex.Atom equal to their text", %{interpreter: i} do
      assert {:ok, [true, "Atom"]} =
               Snex.pyeval(i, "return [a == 'zażółć gęślą jaźń!', type(a).__name__]", %{
                 "a" => :"zażółć gęślą jaźń!"
               })
    end

    test "of 255 characters cross both ways", %{interpreter: i} do
      long = String.to_atom(String.duplicate("ą", 255))
      assert {:ok, [255, ^long]} = Snex.pyeval(i, "return [len(a), a]", %{"a" => long})
    end

    test "are created from Python", %{interpreter: i} do
      name = "ż_#{System.unique_integer([:positive])}_" <> String.duplicate("ą", 200)
      assert {:ok, atom} = Snex.pyeval(i, "return snex.Atom(name)", %{"name" => name})
      assert Atom.to_string(atom) == name
    end

    test "longer than 255 characters are a decode error", %{interpreter: i} do
      assert {:error, %Snex.Error{code: :decode_error, reason: reason}} =
               Snex.pyeval(i, "return snex.Atom('ą' * 256)")

      assert reason =~ "longer than 255"
      assert {:ok, 1} = Snex.pyeval(i, "return 1")
    end

    test "as keys and inside snex.call arguments", %{interpreter: i} do
      assert {:ok, %{zażółć: [:gęślą]}} =
               Snex.pyeval(i, """
               return await snex.call('Elixir.Map', 'new', [[(snex.Atom('zażółć'), [snex.Atom('gęślą')])]])
               """)
    end
  end

  describe "keys equal in Python" do
    for {name, value} <- [
          {"1, 1.0 and true", quote(do: %{1 => :a, 1.0 => :b, true => :c})},
          {"0 and -0.0", quote(do: %{0 => :a, -0.0 => :b})},
          {"an atom and a string", quote(do: %{:a => 1, "a" => 2})},
          {"tuples of such", quote(do: %{{1, "x"} => 1, {1.0, :x} => 2})},
          {"MapSet items", quote(do: MapSet.new([1, 1.0]))},
          {"nested", quote(do: [%{"inner" => %{false => 1, 0 => 2}}])}
        ] do
      test "#{name} are an encode error", %{interpreter: i} do
        assert {:error, %Snex.Error{code: :encode_error, reason: reason}} =
                 Snex.pyeval(i, "return v", %{"v" => unquote(value)})

        assert reason =~ "equal in Python"
        assert {:ok, 1} = Snex.pyeval(i, "return 1")
      end
    end

    test "the same keys as snex.call results are refused too", %{interpreter: i} do
      assert {:error, %Snex.Error{code: :python_runtime_error, reason: reason}} =
               Snex.pyeval(
                 i,
                 "return await snex.call('Elixir.Map', 'new', [[(1, 'a'), (1.0, 'b')]])"
               )

      assert reason =~ "equal in Python"
    end

    test "keys that differ in Python are kept", %{interpreter: i} do
      value = %{1 => :a, 2.5 => :b, :c => 1, "d" => 2, {1, 2} => 3, nil => 4, false => 5}
      assert {:ok, 7} = Snex.pyeval(i, "return len(v)", %{"v" => value})
    end

    test "distinct atoms do not collide with strings", %{interpreter: i} do
      assert {:ok, 2} =
               Snex.pyeval(i, "return len(v)", %{"v" => %{:a => 1, "a" => 2}},
                 encoding_opts: [atom_as: :distinct_atom]
               )
    end

    test "bytes do not collide with atoms", %{interpreter: i} do
      assert {:ok, 2} =
               Snex.pyeval(i, "return len(v)", %{"v" => %{:a => 1, "a" => 2}},
                 encoding_opts: [binary_as: :bytes]
               )
    end
  end
end

defmodule Snex.AtomTableTest do
  # Python cannot fill the atom table: on a peer node with a small one, so distribution is
  # started: not async.
  use ExUnit.Case, async: false

  alias Snex.Test.Cluster

  @tag timeout: 180_000
  test "survives Python returning 20 000 new atoms 30 times" do
    {peer, node} =
      Cluster.start_peer(:"snex_atoms_#{System.unique_integer([:positive])}", [
        ~c"+t",
        ~c"100000"
      ])

    on_exit(fn -> catch_exit(:peer.stop(peer)) end)
    {:ok, i} = :erpc.call(node, Cluster, :start_interpreter, [[]])
    limit = :erpc.call(node, :erlang, :system_info, [:atom_limit])
    assert limit < 200_000

    results =
      for n <- 1..30 do
        :erpc.call(
          node,
          Snex,
          :pyeval,
          [i, "return [snex.Atom(f'new_{n}_{k}') for k in range(20_000)]", %{"n" => n}],
          60_000
        )
      end

    refused = Enum.filter(results, &match?({:error, %Snex.Error{code: :decode_error}}, &1))
    accepted = Enum.filter(results, &match?({:ok, [_ | _]}, &1))
    assert length(refused) + length(accepted) == 30
    assert refused != []
    assert [{:error, %Snex.Error{reason: reason}} | _] = refused
    assert reason =~ "atom table"

    count = :erpc.call(node, :erlang, :system_info, [:atom_count])
    # Snex stops at 90 % of the limit; the node itself may have made a few atoms since.
    assert count <= limit * 0.9 + 100

    # Existing atoms still work, and the interpreter keeps serving.
    assert {:ok, [:ok, :new_1_0]} =
             :erpc.call(node, Snex, :pyeval, [
               i,
               "return [snex.Atom('ok'), snex.Atom('new_1_0')]"
             ])
  end
end
