defmodule Snex.DropinTest do
  # Public behaviours of Snex 0.4 that code written for it relies on.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO
  import Snex.Sigils

  alias Snex.{Error, Serde}

  setup do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(i)
    {:ok, interpreter: i, env: env}
  end

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
