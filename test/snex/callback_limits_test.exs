defmodule Snex.CallbackLimitsTest do
  use ExUnit.Case, async: true
  import ExUnit.CaptureLog

  alias Snex.Test.LogForwarder

  @mod "Elixir.Snex.CallbackLimitsTest"

  @doc false
  # A callback that holds its slot until it is released.
  def hold(test) do
    send(test, {:holding, self()})

    receive do
      :release -> :released
    end
  end

  defp flush(acc \\ []) do
    receive do
      message -> flush([message | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  # Generous: the interpreter starts (and runs its init script) on a machine busy with the
  # rest of the suite.
  defp await_holders(n), do: for(_ <- 1..n, do: assert_receive({:holding, pid}, 30_000) && pid)

  test "calls over the limit raise snex.ElixirError at once; the others run" do
    {:ok, i} = start_supervised({Snex.Interpreter, max_concurrent_callbacks: 3})
    test = self()

    code = """
    import asyncio
    async def one():
        try:
            return await snex.call(mod, 'hold', [me])
        except snex.ElixirError as e:
            await snex.send(me, snex.Atom('refused'))
            return str(e)
    return await asyncio.gather(*[one() for _ in range(10)])
    """

    task =
      Task.async(fn -> Snex.pyeval(i, code, %{"me" => test, "mod" => @mod}, timeout: 30_000) end)

    holders = await_holders(3)
    # The seven others are refused while the first three still hold their slots.
    for _ <- 1..7, do: assert_receive(:refused, 10_000)
    refute_received {:holding, _}
    Enum.each(holders, &send(&1, :release))

    assert {:ok, results} = Task.await(task, 30_000)
    {released, refused} = Enum.split_with(results, &(&1 == :released))
    assert length(released) == 3
    assert length(refused) == 7

    for message <- refused do
      assert message =~
               "3 callbacks (snex.call/snex.cast) of this interpreter are already running"

      assert message =~ ":max_concurrent_callbacks"
    end

    # The slots are free again once the calls have finished.
    code =
      "import asyncio\nreturn await asyncio.gather(*[Elixir.Kernel.abs(-k) for k in range(3)])"

    assert {:ok, [0, 1, 2]} = Snex.pyeval(i, code)
  end

  test "casts over the limit are dropped with a logged error" do
    {:ok, i} = start_supervised({Snex.Interpreter, max_concurrent_callbacks: 1})
    {:ok, env} = Snex.make_env(i, %{"me" => self(), "mod" => @mod})
    holder = Task.async(fn -> Snex.pyeval(env, "return await snex.call(mod, 'hold', [me])") end)
    [held] = await_holders(1)

    LogForwarder.attach()

    capture_log(fn ->
      code = """
      await snex.cast('erlang', 'send', [me, snex.Atom('cast_ran')])
      try:
          await snex.call('erlang', 'abs', [-1])
      except snex.ElixirError as e:
          return str(e)
      """

      assert {:ok, message} = Snex.pyeval(env, code)
      assert message =~ ":max_concurrent_callbacks"

      assert [{:error, log, _}] = LogForwarder.await(["a cast from Python to :erlang.send"])
      assert log =~ "was dropped: 1 callbacks (snex.call/snex.cast)"
      assert log =~ ":max_concurrent_callbacks"
    end)

    refute_received :cast_ran
    send(held, :release)
    assert {:ok, :released} = Task.await(holder)

    # With the slot free, a cast runs again. The held call's task frees its slot when it exits,
    # just after it has answered Python: a cast sent at once may still find the slot taken.
    cast = fn ->
      {:ok, nil} =
        Snex.pyeval(env, "await snex.cast('erlang', 'send', [me, snex.Atom('cast_ran')])")

      receive do
        :cast_ran -> true
      after
        1_000 -> false
      end
    end

    assert Enum.any?(1..25, fn _ -> cast.() end)
  end

  test "the init script's calls count too" do
    test = self()

    init_script = """
    import asyncio
    async def refused():
        try:
            await snex.call('erlang', 'abs', [-1])
        except snex.ElixirError as e:
            await snex.send(me, snex.Atom('refused'))
            return str(e)
    held, refused = await asyncio.gather(snex.call(mod, 'hold', [me]), refused())
    """

    starter =
      Task.async(fn ->
        opts = [
          max_concurrent_callbacks: 1,
          init_script: {init_script, %{"me" => test, "mod" => @mod}}
        ]

        with {:ok, i} <- Snex.Interpreter.start_link(opts) do
          Process.unlink(i)
          {:ok, i}
        end
      end)

    [held] = await_holders(1)
    assert_receive :refused, 30_000
    send(held, :release)
    assert {:ok, i} = Task.await(starter)
    assert {:ok, message} = Snex.pyeval(i, "return refused")
    assert message =~ ":max_concurrent_callbacks"
    GenServer.stop(i)
  end

  test "callbacks still running are stopped with the interpreter" do
    {:ok, i} = Snex.Interpreter.start_link([])
    {:ok, env} = Snex.make_env(i, %{"me" => self(), "mod" => @mod})
    Task.start(fn -> Snex.pyeval(env, "await snex.call(mod, 'hold', [me])", timeout: 30_000) end)
    [held] = await_holders(1)
    ref = Process.monitor(held)
    :ok = Snex.Interpreter.stop(i)
    assert_receive {:DOWN, ^ref, :process, ^held, :killed}, 5_000
  end

  test "an interpreter whose Python exits leaves no crash report of its callback supervisor" do
    Process.flag(:trap_exit, true)
    {:ok, i} = Snex.Interpreter.start_link([])
    %{callbacks: %{supervisor: supervisor}} = :sys.get_state(i)
    ref = Process.monitor(supervisor)
    LogForwarder.attach()

    capture_log(fn ->
      {:error, _} = Snex.pyeval(i, "import os\nos._exit(3)")
      assert_receive {:EXIT, ^i, %Snex.Error{code: :interpreter_exited}}, 5_000
      assert_receive {:DOWN, ^ref, :process, ^supervisor, :shutdown}, 5_000
    end)

    # A process logs before it exits: its report, if any, came before the :DOWN.
    reports = for {:snex_log, _, _, %{pid: ^supervisor}} = log <- flush(), do: log
    assert reports == []
  end

  test "the interpreter stops when its callback supervisor dies" do
    Process.flag(:trap_exit, true)
    {:ok, i} = Snex.Interpreter.start_link([])
    %{callbacks: %{supervisor: supervisor}} = :sys.get_state(i)
    Process.exit(supervisor, :kill)

    assert_receive {:EXIT, ^i, {:callback_supervisor_exited, :killed}}, 5_000
  end

  test ":max_concurrent_callbacks is validated" do
    for bad <- [0, -1, 1.5, :many, nil] do
      assert_raise ArgumentError, ~r/max_concurrent_callbacks/, fn ->
        Snex.Interpreter.start_link(max_concurrent_callbacks: bad)
      end
    end

    {:ok, i} = Snex.Interpreter.start_link(max_concurrent_callbacks: :infinity)
    assert {:ok, 1} = Snex.pyeval(i, "return await Elixir.Kernel.abs(-1)")
    GenServer.stop(i)
  end
end

defmodule Snex.CallbackProcessLimitTest do
  # A peer node with a small process table, so distribution is started: not async.
  use ExUnit.Case, async: false

  alias Snex.Test.Cluster

  @moduletag timeout: 180_000

  # The smallest process table that `erl +P` accepts is 1024; the peer runs the snex
  # application and its interpreters with a little more room than that.
  @process_limit 4096
  @calls 40_000

  setup_all do
    {peer, node} =
      Cluster.start_peer(:"snex_plimit_#{System.unique_integer([:positive])}", [
        ~c"+P",
        ~c"#{@process_limit}"
      ])

    on_exit(fn -> catch_exit(:peer.stop(peer)) end)
    assert :erpc.call(node, :erlang, :system_info, [:process_limit]) == @process_limit
    # A full process table makes the emulator log "Too many processes" for each failed spawn.
    :ok = :erpc.call(node, :logger, :set_primary_config, [:level, :none])
    {:ok, node: node}
  end

  # 40 000 concurrent `snex.call`s of a slow function; counts the results and the distinct
  # error messages.
  @flood """
  import asyncio
  async def one():
      try:
          await snex.call('timer', 'sleep', [3000])
          return 'ok'
      except snex.ElixirError as e:
          return str(e)
  results = await asyncio.gather(*[one() for _ in range(calls)])
  counts = {}
  for r in results:
      counts[r] = counts.get(r, 0) + 1
  return counts
  """

  defp flood(node, interpreter) do
    {:ok, counts} =
      :erpc.call(
        node,
        Snex,
        :pyeval,
        [interpreter, @flood, %{"calls" => @calls}, [timeout: 120_000]],
        150_000
      )

    {ok, errors} = Map.pop(counts, "ok", 0)
    {ok, errors}
  end

  defp assert_alive(node, interpreter) do
    assert :erpc.call(node, Process, :alive?, [interpreter])
    assert {:ok, 2} = :erpc.call(node, Snex, :pyeval, [interpreter, "return 1 + 1"])

    assert {:ok, 3} =
             :erpc.call(node, Snex, :pyeval, [interpreter, "return await Elixir.Kernel.abs(-3)"])
  end

  test "40 000 concurrent snex.calls: the bound holds, the rest fail in Python", %{node: node} do
    {:ok, i} = :erpc.call(node, Cluster, :start_interpreter, [[]])
    {ok, errors} = flood(node, i)

    # Slots freed by finished sleeps may serve later calls, so at least the limit succeed.
    assert ok >= 1_000
    assert ok + Enum.sum(Map.values(errors)) == @calls
    assert [message] = Map.keys(errors)

    assert message =~
             "1000 callbacks (snex.call/snex.cast) of this interpreter are already running"

    assert_alive(node, i)
  end

  test "a full process table fails the calls it cannot spawn, not the interpreter",
       %{node: node} do
    {:ok, i} =
      :erpc.call(node, Cluster, :start_interpreter, [[max_concurrent_callbacks: :infinity]])

    {ok, errors} = flood(node, i)

    assert ok > 0 and ok < @process_limit
    assert ok + Enum.sum(Map.values(errors)) == @calls
    assert [message] = Map.keys(errors)
    assert message =~ "the BEAM cannot spawn a process for it: its process table is full"
    assert_alive(node, i)
  end
end
