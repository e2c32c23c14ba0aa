defmodule Snex.ByNameTest do
  use ExUnit.Case, async: true

  alias Snex.Error

  # Every public form that takes an interpreter, applied to `server`.
  defp every_entry_point(server) do
    [
      pyeval_1: Snex.pyeval(server),
      pyeval_2: Snex.pyeval(server, "return 1"),
      pyeval_3: Snex.pyeval(server, "return x", %{"x" => 1}),
      pyeval_opts: Snex.pyeval(server, "return 1", timeout: 1_000),
      pyeval_4: Snex.pyeval(server, "return x", %{"x" => 1}, timeout: 1_000),
      pyeval_vars: Snex.pyeval(server, %{"x" => 1}),
      make_env_1: Snex.make_env(server),
      make_env_vars: Snex.make_env(server, %{"x" => 1}),
      make_env_opts: Snex.make_env(server, timeout: 1_000),
      make_env_3: Snex.make_env(server, %{"x" => 1}, timeout: 1_000)
    ]
  end

  defp assert_all_call_failed(server) do
    for {form, result} <- every_entry_point(server) do
      assert {^form, {:error, %Error{code: :call_failed}}} = {form, result}
    end
  end

  test "an atom registered to no process" do
    assert_all_call_failed(:snex_by_name_nobody)
  end

  test "{name, node} on this node, registered to no process" do
    assert_all_call_failed({:snex_by_name_nobody, node()})
  end

  test "{name, node} on a node that cannot be reached" do
    assert_all_call_failed({:snex_by_name_nobody, :"nobody@127.0.0.1"})
  end

  test "{:global, name} registered to no process" do
    assert_all_call_failed({:global, :snex_by_name_nobody})
  end

  test "{:via, Registry, key} registered to no process" do
    start_supervised!({Registry, keys: :unique, name: Snex.ByNameTest.Registry})
    assert_all_call_failed({:via, Registry, {Snex.ByNameTest.Registry, :nobody}})
  end

  test "the pid of a dead interpreter, and make_env(from:) with its env" do
    {:ok, i} = Snex.Interpreter.start_link([])
    {:ok, env} = Snex.make_env(i)
    :ok = Snex.Interpreter.stop(i)

    assert_all_call_failed(i)
    assert {:error, %Error{code: :call_failed}} = Snex.make_env(from: env)
    assert {:error, %Error{code: :call_failed}} = Snex.make_env(%{"x" => 1}, from: env)
  end

  test "names of every kind work while registered, fail while the supervisor restarts" do
    start_supervised!({Registry, keys: :unique, name: Snex.ByNameTest.Live})
    via = {:via, Registry, {Snex.ByNameTest.Live, :python}}
    global = {:global, {__MODULE__, make_ref()}}

    for name <- [:snex_by_name_live, via, global] do
      children = [{Snex.Interpreter, name: name, init_script: "base = 1"}]
      {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one)

      assert {:ok, 2} = Snex.pyeval(name, "return base + 1")
      assert {:ok, _env} = Snex.make_env(name)

      # Stopped by its supervisor: the name is free until the child is started again.
      :ok = Supervisor.terminate_child(sup, Snex.Interpreter)
      assert_all_call_failed(name)

      {:ok, _} = Supervisor.restart_child(sup, Snex.Interpreter)
      assert {:ok, 2} = Snex.pyeval(name, "return base + 1")
      Supervisor.stop(sup)
    end
  end

  test "what is no interpreter at all raises ArgumentError" do
    for bad <- [nil, "python", 42, {:global}, {"name", :node}, {:via, "Registry", :x}] do
      assert_raise ArgumentError, ~r/not an interpreter/, fn -> Snex.pyeval(bad, "return 1") end
      assert_raise ArgumentError, ~r/not an interpreter/, fn -> Snex.make_env(bad) end
    end
  end
end
