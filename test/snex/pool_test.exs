defmodule Snex.PoolTest do
  use ExUnit.Case, async: true

  import Snex.Test.Pools

  alias Snex.Error
  alias Snex.Test.OSProcess

  @moduletag timeout: 120_000

  describe "options" do
    test "unknown and invalid options raise ArgumentError" do
      assert_raise ArgumentError, ~r/unknown Snex.Pool options: \[:sise\]/, fn ->
        Snex.Pool.start_link(name: :p, sise: 2)
      end

      assert_raise ArgumentError, ~r/:name/, fn -> Snex.Pool.start_link(size: 2) end
      assert_raise ArgumentError, ~r/:size/, fn -> Snex.Pool.start_link(name: :p, size: 0) end
      assert_raise ArgumentError, ~r/:scope/, fn -> Snex.Pool.child_spec(name: :p, scope: :x) end

      assert_raise ArgumentError, ~r/:max_calls/, fn ->
        Snex.Pool.start_link(name: :p, max_calls: -1)
      end

      assert_raise ArgumentError, ~r/unknown options for Snex.Interpreter/, fn ->
        Snex.Pool.start_link(name: :p, interpreter: {Snex.Interpreter, sync_start: true})
      end

      assert_raise ArgumentError, ~r/cannot be named/, fn ->
        Snex.Pool.start_link(name: :p, interpreter: {Snex.Interpreter, name: :x})
      end

      assert_raise ArgumentError, ~r/interpreter module/, fn ->
        Snex.Pool.start_link(name: :p, interpreter: String)
      end

      refute Process.whereis(:p)
    end

    test "without :interpreter, plain Snex.Interpreter members; :size members", context do
      pool = start_pool(context, size: 3)
      assert [_, _, _] = members = Snex.Pool.members(pool)
      assert Enum.all?(members, &is_pid/1)
      assert {:ok, 2} = Snex.pyeval(pool, "return 1 + 1")
    end

    test "a custom interpreter module, and {module, options}", context do
      pool = start_pool(context, size: 1, interpreter: {Snex.Interpreter, init_script: "v = 7"})
      assert {:ok, 7} = Snex.pyeval(pool, "return v")

      # The pid start_link returns works as the name.
      {:ok, pool2} =
        Snex.Pool.start_link(
          name: :"#{context.test}.2",
          size: 1,
          interpreter: Snex.Test.NumpyInterpreter
        )

      assert {:ok, 6} = Snex.pyeval(pool2, "import numpy\nreturn int(numpy.arange(4).sum())")
      assert {:ok, _env} = Snex.make_env(pool2)
      Snex.Pool.stop(pool2)
    end

    test "a member that cannot start fails the pool's start with its error" do
      Process.flag(:trap_exit, true)

      assert {:error, %Error{code: :python_runtime_error}} =
               Snex.Pool.start_link(
                 name: :snex_pool_test_bad,
                 size: 2,
                 interpreter: {Snex.Interpreter, init_script: "raise ValueError('no')"}
               )

      refute Process.whereis(:snex_pool_test_bad)
      assert Snex.Pool.Table.pool(:snex_pool_test_bad) == nil
    end

    test "the members' options do not show in the pool's status", context do
      pool =
        start_pool(context,
          size: 1,
          interpreter: {Snex.Interpreter, environment: %{"API_KEY" => "hunter2-secret"}}
        )

      assert {:ok, "hunter2-secret"} =
               Snex.pyeval(pool, "import os\nreturn os.environ['API_KEY']")

      refute inspect(:sys.get_status(pool), limit: :infinity) =~ "hunter2"
    end
  end

  describe "the name works wherever an interpreter does" do
    test "pyeval, make_env, call, stream, and {name, node()}", context do
      pool = start_pool(context, size: 2)
      assert {:ok, 3} = Snex.pyeval(pool, "return x + 1", %{"x" => 2})
      assert {:ok, env} = Snex.make_env(pool, %{"y" => 5})
      assert {:ok, 5} = Snex.pyeval(env, "return y")
      assert {:ok, 3.0} = Snex.call(pool, "math", "sqrt", [9])
      assert {:ok, "a-b"} = Snex.call(pool, "operator", "concat", ["a-", "b"])

      assert Snex.stream(pool, "return (i * i for i in range(n))", %{"n" => 5}) |> Enum.to_list() ==
               [0, 1, 4, 9, 16]

      assert {:ok, 1} = Snex.pyeval({pool, node()}, "return 1")
      assert {:ok, _} = Snex.make_env({pool, node()})
    end

    test "so does the pid the pool's start returns", context do
      name = :"#{inspect(__MODULE__)}.#{context.test}"
      pool = start_supervised!({Snex.Pool, name: name, size: 2})
      members = Snex.Pool.members(name)
      assert {:ok, 3} = Snex.pyeval(pool, "return x + 1", %{"x" => 2})
      assert {:ok, 3.0} = Snex.call(pool, "math", "sqrt", [9])
      assert {:ok, env} = Snex.make_env(pool, %{"y" => 5})
      assert env.interpreter in members
      assert {:ok, 5} = Snex.pyeval(env, "return y")
      assert {:local, member, _res, -1} = Snex.Target.resolve(pool)
      assert member in members
    end

    test "a stream on the pool stays on one member, its batches included", context do
      pool = start_pool(context, size: 2)

      pids =
        Snex.stream(pool, "import os\nreturn (os.getpid() for _ in range(50))", %{}, batch_size: 5)
        |> Enum.uniq()

      assert [pid] = pids
      assert pid in member_os_pids(pool)
    end

    test "Snex.call on the pool goes to the least-loaded member", context do
      pool = start_pool(context, size: 2)
      {task, held} = hold(pool)
      [other] = member_os_pids(pool) -- [held]
      assert Enum.uniq(for _ <- 1..20, do: Snex.call(pool, "os", "getpid")) == [{:ok, other}]
      Task.shutdown(task, :brutal_kill)
    end
  end

  test "env affinity: every call on an env made on the pool goes to its member", context do
    pool = start_pool(context, size: 3)

    envs =
      for n <- 1..6 do
        {:ok, env} = Snex.make_env(pool, %{"n" => n})
        env
      end

    # The envs are spread over the members...
    assert envs |> Enum.map(&Snex.Env.interpreter/1) |> Enum.uniq() |> length() > 1

    # ...and each keeps its member and its variables, whatever the load of the others.
    for {env, n} <- Enum.with_index(envs, 1) do
      home = Snex.Interpreter.os_pid(Snex.Env.interpreter(env))

      for _ <- 1..10 do
        assert {:ok, [^home, ^n]} = Snex.pyeval(env, "import os\nn = n\nreturn [os.getpid(), n]")
      end

      assert {:ok, ^home} = Snex.call(env, "os", "getpid")
    end
  end

  test "the load counters of an interpreter: pending and submitted requests" do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    stats = fn -> Snex.Native.stats(Snex.Interpreter.resource(i)) end
    # The init script was the first request.
    assert %{pending: 0, submitted: 1} = stats.()
    for _ <- 1..3, do: {:ok, 1} = Snex.pyeval(i, "return 1")
    assert %{pending: 0, submitted: 4} = stats.()

    me = self()
    code = "import asyncio\nawait snex.send(me, 'started')\nawait asyncio.sleep(3600)"
    tasks = for _ <- 1..2, do: Task.async(fn -> Snex.pyeval(i, code, %{"me" => me}) end)
    for _ <- 1..2, do: assert_receive("started", 10_000)
    assert %{pending: 2, submitted: 6} = stats.()

    # A timeout or the caller's death takes the request out.
    assert {:error, %Error{code: :response_timeout}} =
             Snex.pyeval(i, "import asyncio\nawait asyncio.sleep(3600)", timeout: 50)

    Task.shutdown(hd(tasks), :brutal_kill)
    assert OSProcess.eventually(fn -> match?(%{pending: 1, submitted: 7}, stats.()) end)
    Task.shutdown(List.last(tasks), :brutal_kill)
    assert OSProcess.eventually(fn -> match?(%{pending: 0}, stats.()) end)
  end

  test "least-loaded: a member busy with a long call does not get the next calls", context do
    pool = start_pool(context, size: 2)
    {task, held} = hold(pool)
    [other] = member_os_pids(pool) -- [held]
    assert Enum.uniq(for _ <- 1..30, do: os_pid(pool)) == [other]

    # With both members busy, the one with fewer pending requests gets the next call.
    {task2, ^other} = hold(pool)
    {task3, third} = hold(pool)
    {task4, fourth} = hold(pool)
    assert Enum.sort([third, fourth]) == Enum.sort([held, other])

    for t <- [task, task2, task3, task4], do: Task.shutdown(t, :brutal_kill)
  end

  describe "a member that dies" do
    test "is replaced, and only its callers fail", context do
      pool = start_pool(context, size: 2)
      [a, b] = Snex.Pool.members(pool)
      {doomed, doomed_os_pid} = hold(pool)

      # The other member is in the middle of a call that must not notice.
      survivor =
        Task.async(fn ->
          Snex.pyeval(pool, "import asyncio, os\nawait asyncio.sleep(0.5)\nreturn os.getpid()")
        end)

      {_, 0} = System.cmd("kill", ["-9", Integer.to_string(doomed_os_pid)])

      assert {:error, %Error{code: :call_failed}} = Task.await(doomed, 10_000)
      assert {:ok, survivor_os_pid} = Task.await(survivor, 10_000)
      refute survivor_os_pid == doomed_os_pid

      assert OSProcess.eventually(fn ->
               members = Snex.Pool.members(pool)
               length(members) == 2 and members != [a, b] and members
             end)

      assert survivor_os_pid in member_os_pids(pool)
      assert Enum.all?(1..10, fn _ -> match?({:ok, _}, Snex.pyeval(pool, "return 1")) end)
    end

    test "killed as a process: its env's calls fail, new calls work", context do
      pool = start_pool(context, size: 1)
      [member] = Snex.Pool.members(pool)
      {:ok, env} = Snex.make_env(pool)
      ref = Process.monitor(member)
      Process.exit(member, :kill)
      assert_receive {:DOWN, ^ref, :process, _, :killed}

      assert {:error, %Error{code: :call_failed}} = Snex.pyeval(env, "return 1")
      assert OSProcess.eventually(fn -> match?([m] when m != member, Snex.Pool.members(pool)) end)
      assert {:ok, 1} = Snex.pyeval(pool, "return 1")
    end

    test "too many deaths in a short time end the pool", context do
      Process.flag(:trap_exit, true)
      name = :"#{context.test}"
      {:ok, pool} = Snex.Pool.start_link(name: name, size: 1, max_restarts: 2, max_seconds: 60)

      for _ <- 1..3 do
        member =
          OSProcess.eventually(fn ->
            case Snex.Pool.members(name) do
              [member] -> member
              [] -> nil
            end
          end)

        ref = Process.monitor(member)
        Process.exit(member, :kill)
        assert_receive {:DOWN, ^ref, :process, _, :killed}
      end

      assert_receive {:EXIT, ^pool, {:too_many_member_restarts, :killed}}, 10_000
    end
  end

  test "stopping the pool stops its members' Pythons", context do
    name = :"#{context.test}"
    {:ok, _} = Snex.Pool.start_link(name: name, size: 2)
    os_pids = member_os_pids(name)
    :ok = Snex.Pool.stop(name)
    assert Enum.all?(os_pids, &OSProcess.wait_gone/1)
    assert Snex.Pool.Table.pool(name) == nil
    assert {:error, %Error{code: :call_failed}} = Snex.pyeval(name, "return 1")
  end
end
