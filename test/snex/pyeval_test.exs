defmodule Snex.PyevalTest do
  use Snex.InterpreterCase, async: true

  alias Snex.Error

  describe "return values" do
    test "top-level return gives the value", %{env: env} do
      assert {:ok, 3} = Snex.pyeval(env, "return 1 + 2")
    end

    test "no return gives nil", %{env: env} do
      assert {:ok, nil} = Snex.pyeval(env, "x = 1")
    end

    test "return inside top-level blocks", %{env: env} do
      code = """
      for i in range(10):
          if i == 3:
              return i
      """

      assert {:ok, 3} = Snex.pyeval(env, code)

      code = """
      try:
          raise ValueError("x")
      except ValueError:
          return "caught"
      """

      assert {:ok, "caught"} = Snex.pyeval(env, code)

      code = """
      import contextlib
      with contextlib.nullcontext(5) as v:
          return v
      """

      assert {:ok, 5} = Snex.pyeval(env, code)

      code = """
      if True:
          while True:
              return "loop"
      """

      assert {:ok, "loop"} = Snex.pyeval(env, code)
    end

    test "return ends the code and finally blocks still run", %{env: env} do
      code = """
      log = []
      try:
          return 1
      finally:
          log.append("finally")
      log.append("after")
      """

      assert {:ok, 1} = Snex.pyeval(env, code)
      assert {:ok, ["finally"]} = Snex.pyeval(env, "return log")
    end

    test "except Exception does not swallow a top-level return", %{env: env} do
      code = """
      try:
          return "value"
      except Exception:
          return "swallowed"
      """

      assert {:ok, "value"} = Snex.pyeval(env, code)
    end

    test "return inside a function keeps its meaning", %{env: env} do
      code = """
      def f():
          return 10
      return f() + 1
      """

      assert {:ok, 11} = Snex.pyeval(env, code)
    end
  end

  describe "await" do
    test "top-level await", %{env: env} do
      code = """
      import asyncio
      await asyncio.sleep(0.01)
      return "awaited"
      """

      assert {:ok, "awaited"} = Snex.pyeval(env, code)
    end

    test "async code of many callers overlaps", %{interpreter: interpreter} do
      {time, results} =
        :timer.tc(fn ->
          1..20
          |> Enum.map(fn i ->
            Task.async(fn ->
              Snex.pyeval(interpreter, "import asyncio\nawait asyncio.sleep(0.3)\nreturn i", %{
                "i" => i
              })
            end)
          end)
          |> Task.await_many(10_000)
        end)

      assert results == Enum.map(1..20, &{:ok, &1})
      # 20 sequential sleeps would take 6 s.
      assert time < 3_000_000
    end
  end

  describe "variables and environments" do
    test "vars are set before the code and stay in the env", %{env: env} do
      assert {:ok, 42} = Snex.pyeval(env, "return x * 2", %{"x" => 21})
      assert {:ok, 21} = Snex.pyeval(env, "return x")
      assert {:ok, nil} = Snex.pyeval(env, "y = x + 1")
      assert {:ok, 22} = Snex.pyeval(env, "return y")
    end

    test "nil code only sets vars", %{env: env} do
      assert {:ok, nil} = Snex.pyeval(env, nil, %{"z" => "zed"})
      assert {:ok, "zed"} = Snex.pyeval(env, "return z")
    end

    test "make_env with vars", %{interpreter: interpreter} do
      {:ok, env} = Snex.make_env(interpreter, %{"a" => 1, "b" => [1, 2]})
      assert {:ok, [1, [1, 2]]} = Snex.pyeval(env, "return [a, b]")
    end

    test "environments are separate", %{interpreter: interpreter} do
      {:ok, e1} = Snex.make_env(interpreter, %{"v" => 1})
      {:ok, e2} = Snex.make_env(interpreter, %{"v" => 2})
      assert {:ok, 1} = Snex.pyeval(e1, "return v")
      assert {:ok, 2} = Snex.pyeval(e2, "return v")
    end

    test "code on an interpreter runs in a throw-away env", %{interpreter: interpreter} do
      assert {:ok, nil} = Snex.pyeval(interpreter, "leaked = 1")

      assert {:error, %Error{code: :python_runtime_error, reason: reason}} =
               Snex.pyeval(interpreter, "return leaked")

      assert reason =~ "leaked"
    end

    test "every env has snex and Elixir", %{env: env} do
      assert {:ok, [true, true]} =
               Snex.pyeval(env, "return [snex.Atom is not None, Elixir is not None]")
    end

    test "variable names must be strings", %{env: env} do
      assert_raise ArgumentError, fn -> Snex.pyeval(env, "return 1", %{x: 1}) end
      assert_raise ArgumentError, fn -> Snex.make_env(Snex.Env.interpreter(env), %{1 => 1}) end
    end
  end

  describe "arities" do
    test "every shorter form works", %{env: env} do
      assert {:ok, nil} = Snex.pyeval(env)
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
      assert {:ok, 2} = Snex.pyeval(env, "return v", %{"v" => 2})
      assert {:ok, 3} = Snex.pyeval(env, "return 3", timeout: 1_000)
      assert {:ok, nil} = Snex.pyeval(env, %{"w" => 4})
      assert {:ok, 4} = Snex.pyeval(env, "return w")
      assert {:ok, nil} = Snex.pyeval(env, %{"w" => 5}, timeout: 1_000)
      assert {:ok, 5} = Snex.pyeval(env, "return w")
      assert {:ok, nil} = Snex.pyeval(env, timeout: 1_000)
      assert {:ok, 6} = Snex.pyeval(env, "return u", %{"u" => 6}, timeout: 1_000)
      assert {:ok, 7} = Snex.pyeval(env, %Snex.Code{src: "return 7"})
      assert {:ok, 8} = Snex.pyeval(env, Snex.Code.wrap(["return ", "8"]))
    end

    test "bad arguments raise", %{env: env} do
      assert_raise ArgumentError, fn -> Snex.pyeval(env, 123) end
    end
  end

  describe "errors" do
    test "carry the Python exception's class name", %{env: env} do
      assert {:error, %Snex.Error{code: :python_runtime_error, python_type: "KeyError"}} =
               Snex.pyeval(env, "return {}['missing']")

      assert {:error, %Snex.Error{python_type: "CustomError"}} =
               Snex.pyeval(env, "class CustomError(Exception): pass\nraise CustomError('x')")

      assert {:error, %Snex.Error{python_type: "ZeroDivisionError"}} =
               Snex.pyeval(env, "import asyncio\nawait asyncio.sleep(0)\n1 / 0")

      :ok = Snex.destroy_env(env)

      assert {:error, %Snex.Error{code: :env_not_found, python_type: nil}} =
               Snex.pyeval(env, "return 1")

      {:ok, env} = Snex.make_env(Snex.Env.interpreter(env))

      assert_raise Snex.Error, ~r/KeyError/, fn -> Snex.pyeval!(env, "return {}['k']") end
    end

    test "a Python exception is an error with a traceback of the user's code", %{env: env} do
      code = """
      def inner():
          raise ValueError("bad value")
      inner()
      """

      assert {:error, %Error{code: :python_runtime_error, reason: "bad value", traceback: tb}} =
               Snex.pyeval(env, code)

      text = Enum.join(tb)
      assert text =~ ~s(File "<Snex.Code>", line 2, in inner)
      assert text =~ ~s(File "<Snex.Code>", line 3)
      assert text =~ "ValueError: bad value"
      refute text =~ "snex/"
      # The interpreter keeps serving.
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end

    test "a syntax error is an error", %{env: env} do
      assert {:error, %Error{code: :python_runtime_error}} = Snex.pyeval(env, "return (")
    end

    test "sys.exit in user code is an error of that call", %{env: env} do
      assert {:error, %Error{code: :python_runtime_error}} =
               Snex.pyeval(env, "import sys\nsys.exit(3)")

      assert {:ok, "alive"} = Snex.pyeval(env, "return 'alive'")
    end

    test "Snex.Error has a readable message", %{env: env} do
      {:error, error} = Snex.pyeval(env, "raise RuntimeError('boom')")
      assert Exception.message(error) =~ "python_runtime_error: boom"
      assert Exception.message(error) =~ "RuntimeError: boom"
    end

    test "a result Python cannot encode is an error of that call", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "return object()")

      assert reason =~ "object"
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end

    test "a value Elixir cannot send is an error of that call", %{env: env} do
      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "return x", %{"x" => <<0xFF, 0xFE>>})

      assert reason =~ "UTF-8"
      assert {:ok, 1} = Snex.pyeval(env, "return 1")
    end
  end

  describe "timeouts and cancellation" do
    test "a timeout gives response_timeout and cancels the Python task", %{env: env} do
      code = """
      import asyncio
      state = "started"
      try:
          await asyncio.sleep(10)
          state = "finished"
      except asyncio.CancelledError:
          state = "cancelled"
          raise
      """

      assert {:error, %Error{code: :response_timeout}} = Snex.pyeval(env, code, timeout: 100)

      assert Snex.Test.OSProcess.eventually(fn ->
               Snex.pyeval(env, "return state") == {:ok, "cancelled"}
             end)
    end

    test "the interpreter answers at once after a timeout", %{env: env} do
      {:error, %Error{code: :response_timeout}} =
        Snex.pyeval(env, "import asyncio\nawait asyncio.sleep(10)", timeout: 50)

      {time, {:ok, 1}} = :timer.tc(fn -> Snex.pyeval(env, "return 1") end)
      assert time < 1_000_000
    end

    test "a caller that dies has its Python task cancelled", %{env: env} do
      code = """
      import asyncio
      died_state = "started"
      try:
          await asyncio.sleep(10)
      except asyncio.CancelledError:
          died_state = "cancelled"
          raise
      """

      {pid, ref} = spawn_monitor(fn -> Snex.pyeval(env, code, timeout: :infinity) end)

      assert Snex.Test.OSProcess.eventually(fn ->
               Snex.pyeval(env, "return globals().get('died_state')") == {:ok, "started"}
             end)

      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}

      assert Snex.Test.OSProcess.eventually(fn ->
               Snex.pyeval(env, "return died_state") == {:ok, "cancelled"}
             end)
    end
  end

  test "100 concurrent callers on one interpreter all get their own answers", %{
    interpreter: interpreter
  } do
    results =
      1..100
      |> Enum.map(fn i ->
        Task.async(fn ->
          {:ok, env} = Snex.make_env(interpreter, %{"i" => i})

          Snex.pyeval(
            env,
            "import asyncio, random\nawait asyncio.sleep(random.random() / 50)\nreturn i * i"
          )
        end)
      end)
      |> Task.await_many(20_000)

    assert results == Enum.map(1..100, &{:ok, &1 * &1})
  end
end
