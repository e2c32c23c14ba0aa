defmodule Snex.DirectCallTest do
  use Snex.InterpreterCase, async: true

  alias Snex.Error

  test "calls a function of a module", %{interpreter: i} do
    assert {:ok, 3.0} = Snex.call(i, "math", "sqrt", [9])
    assert {:ok, 8} = Snex.call(i, "builtins", "pow", [2, 3])
    assert {:ok, "/a/b"} = Snex.call(i, "os.path", "join", ["/a", "b"])
  end

  test "keyword arguments, as a map or a keyword list", %{interpreter: i} do
    assert {:ok, 255} = Snex.call(i, "builtins", "int", ["ff"], kwargs: [base: 16])
    assert {:ok, 255} = Snex.call(i, "builtins", "int", ["ff"], kwargs: %{"base" => 16})
  end

  test "awaits what the function returns", %{interpreter: i} do
    assert {:ok, "done"} = Snex.call(i, "asyncio", "sleep", [0.01, "done"])
  end

  test "a nested attribute as the function", %{interpreter: i} do
    assert {:ok, "2024-01-02"} =
             Snex.call(i, "datetime", "date.isoformat", [
               Snex.Serde.object("datetime", "date", [2024, 1, 2])
             ])
  end

  test "on an env: uses its modules and leaves it as it was", %{env: env} do
    {:ok, nil} = Snex.pyeval(env, "x = 1")
    assert {:ok, 6} = Snex.call(env, "builtins", "sum", [[1, 2, 3]])
    assert {:ok, false} = Snex.pyeval(env, "return '__snex_call__' in globals()")
  end

  test "errors: a missing module or function, an exception, a timeout", %{interpreter: i} do
    assert {:error, %Error{code: :python_runtime_error, reason: reason}} =
             Snex.call(i, "no_such_module_xyz", "f")

    assert reason =~ "no_such_module_xyz"

    assert {:error, %Error{code: :python_runtime_error}} = Snex.call(i, "math", "nope", [])

    assert {:error, %Error{code: :python_runtime_error, reason: "math domain error"}} =
             Snex.call(i, "math", "sqrt", [-1])

    assert {:error, %Error{code: :response_timeout}} =
             Snex.call(i, "asyncio", "sleep", [5], timeout: 200)

    assert {:ok, 1} = Snex.call(i, "builtins", "abs", [-1])
  end

  test "a synchronous function that outlives its timeout is interrupted", %{interpreter: i} do
    assert {:error, %Error{code: :response_timeout}} =
             Snex.call(i, "time", "sleep", [20], timeout: 300)

    started = System.monotonic_time(:millisecond)
    assert {:ok, 1} = Snex.call(i, "builtins", "abs", [-1])
    assert System.monotonic_time(:millisecond) - started < 1_000
  end

  test "a destroyed env is an error", %{interpreter: i} do
    {:ok, env} = Snex.make_env(i)
    :ok = Snex.destroy_env(env)
    assert {:error, %Error{code: :env_not_found}} = Snex.call(env, "builtins", "abs", [-1])
  end

  test "bad arguments raise", %{interpreter: i} do
    assert_raise ArgumentError, fn -> Snex.call(i, :math, "sqrt", [1]) end
    assert_raise ArgumentError, fn -> Snex.call(i, "math", "sqrt", 1) end
    assert_raise ArgumentError, fn -> Snex.call(i, "builtins", "int", ["1"], kwargs: [{1, 2}]) end
    assert_raise ArgumentError, fn -> Snex.call(i, "math", "sqrt", [1], timout: 5) end
  end
end
