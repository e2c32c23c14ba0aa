defmodule Snex.DropinTest do
  # Public behaviours of Snex 0.4 that code written for it relies on.
  use Snex.InterpreterCase, async: true

  import ExUnit.CaptureIO
  import Snex.Sigils

  alias Snex.{Error, Serde}

  describe "Snex.Serde.float/1" do
    test "takes any float, which arrives unchanged as a Python float", %{env: env} do
      values = [1.5, -0.0, 0.1, 1.0e308, 5.0e-324]

      assert {:ok, [types, bits]} =
               Snex.pyeval(
                 env,
                 "import struct\nreturn [[type(x).__name__ for x in xs], " <>
                   "[struct.pack('>d', x).hex() for x in xs]]",
                 %{"xs" => Enum.map(values, &Serde.float/1)}
               )

      assert types == List.duplicate("float", length(values))
      assert bits == Enum.map(values, &Base.encode16(<<&1::float>>, case: :lower))

      assert {:ok, -0.0} = Snex.pyeval(env, "return x", %{"x" => Serde.float(-0.0)})
      assert {:ok, 2.5} = Snex.pyeval(env, "return x * 2", %{"x" => Serde.float(1.25)})
    end

    test "still takes the special values, and refuses what is not a float" do
      assert %Serde.Float{value: :nan} = Serde.float(:nan)
      assert_raise ArgumentError, fn -> Serde.float(1) end
      assert_raise ArgumentError, fn -> Serde.float(:other) end
    end
  end

  describe "result_encoding_opts" do
    test "snex.EncodingOpt and snex.EncodingOpts", %{env: env} do
      code = """
      import enum, typing
      E = snex.EncodingOpt
      enums = [E.BinaryAs, E.SetAs, E.AtomAs]
      return [
          [[m.name for m in e] for e in enums],
          all(isinstance(m, str) and isinstance(m, enum.Enum) for e in enums for m in e),
          all(type(m.value) is snex.Atom and m == m.value for e in enums for m in e),
          sorted(snex.EncodingOpts.__optional_keys__),
          sorted(snex.EncodingOpts.__required_keys__),
          snex.EncodingOpts(binary_as=E.BinaryAs.BYTES) == {"binary_as": "bytes"},
          E.AtomAs.DISTINCT_ATOM.value,
      ]
      """

      assert {:ok, [names, true, true, optional, [], true, :distinct_atom]} =
               Snex.pyeval(env, code)

      assert names == [
               ["STR", "BYTES", "BYTEARRAY"],
               ["SET", "FROZENSET"],
               ["ATOM", "DISTINCT_ATOM"]
             ]

      assert optional == ["atom_as", "binary_as", "set_as"]
    end

    test "the enums are StrEnums where Python has enum.StrEnum", %{env: env} do
      code = """
      import enum
      if not hasattr(enum, "StrEnum"):
          return True
      return all(issubclass(e, enum.StrEnum)
                 for e in [snex.EncodingOpt.BinaryAs, snex.EncodingOpt.SetAs,
                           snex.EncodingOpt.AtomAs])
      """

      assert {:ok, true} = Snex.pyeval(env, code)
    end

    test "snex.call and Elixir.* calls encode their result with them" do
      # The interpreter's own options say binaries are bytes: the calls override them.
      {:ok, i} =
        start_supervised(
          {Snex.Interpreter, encoding_opts: [binary_as: :bytes]},
          id: :bytes_interpreter
        )

      code = """
      E, Opts = snex.EncodingOpt, snex.EncodingOpts
      default = await snex.call("erlang", "list_to_binary", [[104, 105]])
      as_str = await snex.call("erlang", "list_to_binary", [[104, 105]],
                               result_encoding_opts=Opts(binary_as=E.BinaryAs.STR))
      as_bytearray = await snex.call("erlang", "list_to_binary", [[104, 105]],
                                     result_encoding_opts={"binary_as": "bytearray"})
      frozen = await Elixir.MapSet.new([1, 2], result_encoding_opts=Opts(set_as=E.SetAs.FROZENSET))
      plain = await Elixir.MapSet.new([1, 2])
      distinct = await snex.BeamModuleProxy("erlang").binary_to_atom(
          "ok", result_encoding_opts=Opts(atom_as=E.AtomAs.DISTINCT_ATOM))
      return [type(v).__name__ for v in [default, as_str, as_bytearray, frozen, plain, distinct]]
      """

      assert {:ok, types} = Snex.pyeval(i, code)
      assert types == ["bytes", "str", "bytearray", "frozenset", "set", "DistinctAtom"]
    end

    test "an unknown option or value raises in Python", %{env: env} do
      for opts <- [~s({"binary_as": "text"}), ~s({"binary": "bytes"})] do
        assert {:error, %Error{code: :python_runtime_error, reason: reason}} =
                 Snex.pyeval(
                   env,
                   "await snex.call('erlang', 'abs', [1], result_encoding_opts=#{opts})"
                 )

        assert reason =~ "encoding option"
      end
    end
  end

  describe "snex.send destinations" do
    test "a pid, a registered name as Atom or str", %{env: env} do
      name = :"snex_dropin_#{System.unique_integer([:positive])}"
      Process.register(self(), name)

      {:ok, nil} =
        Snex.pyeval(
          env,
          """
          await snex.send(me, "to pid")
          await snex.send(name, "to Atom name")
          await snex.send(str(name), "to str name")
          """,
          %{"me" => self(), "name" => name}
        )

      assert_receive "to pid"
      assert_receive "to Atom name"
      assert_receive "to str name"
    end

    test "(name, node) with the node as Atom, str or snex.Term", %{env: env} do
      name = :"snex_dropin_#{System.unique_integer([:positive])}"
      Process.register(self(), name)

      {:ok, nil} =
        Snex.pyeval(
          env,
          """
          await snex.send((name, node), "node as Atom")
          await snex.send((name, str(node)), "node as str")
          await snex.send((str(name), node_term), "node as Term")
          """,
          %{"name" => name, "node" => node(), "node_term" => Serde.term(node())}
        )

      assert_receive "node as Atom"
      assert_receive "node as str"
      assert_receive "node as Term"
    end

    test "anything else raises TypeError in Python", %{env: env} do
      assert {:error, %Error{code: :python_runtime_error, reason: reason}} =
               Snex.pyeval(env, "await snex.send(42, 'x')")

      assert reason =~ "snex.send needs a pid"
    end
  end

  describe "the deprecated :returning option" do
    test "a list of expressions gives a list of values, with a deprecation warning", %{
      env: env
    } do
      warning = capture_io(:stderr, fn -> send(self(), Snex.pyeval(env, returning: ["42"])) end)
      assert_received {:ok, [42]}
      assert warning =~ ":returning option of Snex.pyeval is deprecated"
    end

    test "the expressions are evaluated after the code, in the env", %{
      env: env,
      interpreter: i
    } do
      capture_io(:stderr, fn ->
        assert {:ok, [42, 2]} = Snex.pyeval(env, "x = 2", returning: ["x * 21", "x"])
        assert {:ok, 3} = Snex.pyeval(env, "y = x + z", %{"z" => 1}, returning: "y")
        assert {:ok, 3} = Snex.pyeval(env, %{"z" => 5}, returning: "y # a comment")
        assert {:ok, [5, 6]} = Snex.pyeval(env, "if z:\n    w = 6", returning: ["z", "w"])
        assert {:ok, []} = Snex.pyeval(env, returning: [])
        assert {:ok, 7} = Snex.pyeval(i, returning: "7")
        assert {:ok, 1} = Snex.pyeval(env, ~p"a = 1", returning: "a")
      end)
    end

    test "an invalid value raises ArgumentError", %{env: env} do
      assert_raise ArgumentError, ~r/:returning/, fn -> Snex.pyeval(env, returning: 42) end
      assert_raise ArgumentError, ~r/:returning/, fn -> Snex.pyeval(env, returning: [:a]) end
    end
  end

  describe "argument checks" do
    test "unknown options raise ArgumentError", %{env: env} do
      assert_raise ArgumentError, ~r/timout/, fn ->
        Snex.pyeval(env, "return 1", timout: 100)
      end

      assert_raise ArgumentError, ~r/timout/, fn -> Snex.pyeval(env, timout: 100) end

      assert_raise ArgumentError, ~r/timout/, fn ->
        Snex.pyeval(env, "return x", %{"x" => 1}, timout: 100)
      end

      assert_raise ArgumentError, ~r/timout/, fn ->
        Snex.pyeval(env, %{"x" => 1}, timout: 100)
      end
    end

    test "code that is not a string, a Snex.Code or nil raises ArgumentError", %{env: env} do
      assert_raise ArgumentError, ~r/code must be/, fn -> Snex.pyeval(env, ~c"return 1") end
      assert_raise ArgumentError, ~r/code must be/, fn -> Snex.pyeval(env, [1, 2]) end

      assert_raise ArgumentError, ~r/code must be/, fn ->
        Snex.pyeval(env, ~c"return 1", %{"x" => 1})
      end

      assert_raise ArgumentError, ~r/code must be/, fn ->
        Snex.pyeval(env, ~c"return 1", timeout: 100)
      end

      assert_raise ArgumentError, ~r/code must be/, fn -> Snex.pyeval(env, 42) end
    end

    test "the forms that were valid stay valid", %{env: env} do
      assert {:ok, nil} = Snex.pyeval(env)
      assert {:ok, nil} = Snex.pyeval(env, [])
      assert {:ok, nil} = Snex.pyeval(env, timeout: 1_000)
      assert {:ok, nil} = Snex.pyeval(env, %{"q" => 1}, timeout: 1_000)
      assert {:ok, 1} = Snex.pyeval(env, "return q", timeout: 1_000, encoding_opts: [])
    end
  end

  describe "bang variants" do
    test "pyeval!/1..4 return the value or raise the Snex.Error", %{env: env} do
      assert Snex.pyeval!(env) == nil
      assert Snex.pyeval!(env, "return 1") == 1
      assert Snex.pyeval!(env, "return v", %{"v" => 2}) == 2
      assert Snex.pyeval!(env, "return v", timeout: 1_000) == 2
      assert Snex.pyeval!(env, "return v + 1", %{"v" => 2}, timeout: 1_000) == 3

      error = assert_raise Error, fn -> Snex.pyeval!(env, "return {}['k']") end
      assert error.code == :python_runtime_error
      assert Exception.message(error) =~ "KeyError"

      assert %Error{code: :response_timeout} =
               assert_raise(Error, fn ->
                 Snex.pyeval!(env, "import asyncio\nawait asyncio.sleep(5)", timeout: 50)
               end)
    end

    test "make_env!/1..3 return the env or raise the Snex.Error", %{
      env: env,
      interpreter: i
    } do
      assert %Snex.Env{} = Snex.make_env!(i)
      assert %Snex.Env{} = a = Snex.make_env!(i, %{"a" => 1})
      assert %Snex.Env{} = b = Snex.make_env!(i, %{"b" => 2}, from: a)
      assert %Snex.Env{} = c = Snex.make_env!(from: [a, b])
      assert Snex.pyeval!(c, "return [a, b]") == [1, 2]
      assert %Snex.Env{} = Snex.make_env!(%{"d" => 1}, from: env)

      assert %Error{code: :env_key_not_found} =
               assert_raise(Error, fn -> Snex.make_env!(i, from: {env, only: ["missing"]}) end)
    end
  end
end
