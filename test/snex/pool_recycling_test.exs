defmodule Snex.PoolRecyclingTest do
  use ExUnit.Case, async: true

  import Snex.Test.Pools

  alias Snex.Error
  alias Snex.Pool.Memory
  alias Snex.Test.OSProcess

  @moduletag timeout: 180_000

  # `workers` processes call `pool` until `until` returns true (polled by the test process),
  # some of the calls still running when their member retires; returns every result.
  defp under_load(pool, workers, until) do
    code = """
    import asyncio, os
    if slow:
        await asyncio.sleep(0.02)
    return os.getpid()
    """

    stop = :atomics.new(1, [])

    call = fn n -> Snex.pyeval(pool, code, %{"slow" => rem(n, 4) == 0}) end

    loop = fn loop, n, acc ->
      if :atomics.get(stop, 1) == 1, do: acc, else: loop.(loop, n + 1, [call.(n) | acc])
    end

    tasks = for w <- 1..workers, do: Task.async(fn -> loop.(loop, w, []) end)
    assert OSProcess.eventually(until, 60_000)
    :atomics.put(stop, 1, 1)
    Enum.flat_map(tasks, &Task.await(&1, 60_000))
  end

  test "max_calls: recycling under continuous load fails no call", context do
    pool = start_pool(context, size: 2, max_calls: 40, retire_grace: 50)
    first_members = Snex.Pool.members(pool)
    seen = :ets.new(:seen, [:public])

    # Until the members have been replaced three times over.
    results =
      under_load(pool, 6, fn ->
        Enum.each(Snex.Pool.members(pool), &:ets.insert(seen, {&1}))
        :ets.info(seen, :size) >= 8
      end)

    assert length(results) > 100
    assert Enum.filter(results, &(not match?({:ok, _}, &1))) == []

    # The retired Pythons end.
    os_pids = results |> Enum.map(fn {:ok, pid} -> pid end) |> Enum.uniq()
    assert length(os_pids) >= 6
    assert OSProcess.eventually(fn -> length(Snex.Pool.members(pool)) == 2 end)
    current = member_os_pids(pool)
    assert Enum.all?(os_pids -- current, &OSProcess.wait_gone/1)
    refute Enum.any?(first_members, &Process.alive?/1)
  end

  test "a retiring member finishes its in-flight calls", context do
    # The init script is the first request; the next two calls reach max_calls.
    pool = start_pool(context, size: 1, max_calls: 3, retire_grace: 50)
    [first] = Snex.Pool.members(pool)
    first_os_pid = Snex.Interpreter.os_pid(first)
    release = release_file()
    {long, ^first_os_pid} = hold(pool, release)
    # Over the limit: the next calls are served until the replacement is ready, then by it.
    assert {:ok, ^first_os_pid} = Snex.pyeval(pool, "import os\nreturn os.getpid()")
    assert OSProcess.eventually(fn -> Snex.Pool.members(pool) != [first] end)

    # Retired, but its call is still running: it stays.
    ref = Process.monitor(first)
    refute_receive {:DOWN, ^ref, _, _, _}, 300
    release(release)
    assert {:ok, ^first_os_pid} = Task.await(long, 10_000)
    assert_receive {:DOWN, ^ref, :process, _, :shutdown}, 10_000
    assert OSProcess.wait_gone(first_os_pid)
  end

  test "a caller that picked a member just before it retired can still use it", context do
    pool = start_pool(context, size: 1, max_calls: 3, retire_grace: 1_000)
    # What a caller picking the member gets.
    assert {:local, first, _res, -1} = Snex.Target.resolve(pool)
    for _ <- 1..2, do: assert({:ok, 1} = Snex.pyeval(pool, "return 1"))
    assert OSProcess.eventually(fn -> Snex.Pool.members(pool) != [first] end)

    ref = Process.monitor(first)
    refute_receive {:DOWN, ^ref, _, _, _}, 200
    assert {:ok, 2} = Snex.pyeval(first, "return 2")
    assert_receive {:DOWN, ^ref, :process, _, :shutdown}, 10_000
  end

  test "envs on a retired member are reported as gone afterwards", context do
    pool = start_pool(context, size: 1, max_calls: 5, retire_grace: 50)
    [first] = Snex.Pool.members(pool)
    {:ok, env} = Snex.make_env(pool, %{"x" => 1})
    assert {:ok, 1} = Snex.pyeval(env, "return x")

    for _ <- 1..5, do: assert({:ok, _} = Snex.pyeval(pool, "return 1"))
    ref = Process.monitor(first)
    assert_receive {:DOWN, ^ref, :process, _, :shutdown}, 10_000

    assert {:error, %Error{code: :call_failed}} = Snex.pyeval(env, "return x")
    assert [other] = Snex.Pool.members(pool)
    refute other == first
    assert {:ok, 1} = Snex.pyeval(pool, "return 1")
  end

  test "an env in use keeps its retiring member until it is quiet", context do
    pool = start_pool(context, size: 1, max_calls: 5, retire_grace: 300)
    [first] = Snex.Pool.members(pool)
    {:ok, env} = Snex.make_env(pool)
    for _ <- 1..5, do: assert({:ok, _} = Snex.pyeval(pool, "return 1"))
    assert OSProcess.eventually(fn -> Snex.Pool.members(pool) != [first] end)

    # Calls on the env every 50 ms keep it alive past the grace period...
    for _ <- 1..12 do
      assert {:ok, nil} = Snex.pyeval(env, "import asyncio\nawait asyncio.sleep(0.05)")
    end

    assert Process.alive?(first)
    # ...and once the env is quiet, the member goes.
    ref = Process.monitor(first)
    assert_receive {:DOWN, ^ref, :process, _, :shutdown}, 10_000
  end

  test "retire_timeout: an env kept busy holds its retiring member only so long", context do
    pool = start_pool(context, size: 1, max_calls: 5, retire_grace: 60_000, retire_timeout: 300)
    [first] = Snex.Pool.members(pool)
    {:ok, env} = Snex.make_env(pool)
    for _ <- 1..5, do: assert({:ok, _} = Snex.pyeval(pool, "return 1"))
    assert OSProcess.eventually(fn -> Snex.Pool.members(pool) != [first] end)
    ref = Process.monitor(first)
    deadline = System.monotonic_time(:millisecond) + 10_000

    # Two callers keep a request pending on the env nearly all the time, so it is never quiet
    # for the grace period; after retire_timeout its calls are refused, its pending requests
    # finish, and the member goes.
    loop = fn ->
      Stream.repeatedly(fn -> Snex.pyeval(env, "import asyncio\nawait asyncio.sleep(0.02)") end)
      |> Enum.find(fn result ->
        System.monotonic_time(:millisecond) > deadline or not match?({:ok, nil}, result)
      end)
    end

    callers = for _ <- 1..2, do: Task.async(loop)

    for caller <- callers do
      assert {:error, %Error{code: :call_failed}} = Task.await(caller, 15_000)
    end

    assert_receive {:DOWN, ^ref, :process, _, :shutdown}, 10_000
  end

  test "max_memory: a member whose Python grows too big is replaced", context do
    pool =
      start_pool(context,
        size: 1,
        max_memory: 150 * 1024 * 1024,
        check_interval: 50,
        retire_grace: 50
      )

    [first] = Snex.Pool.members(pool)
    first_os_pid = Snex.Interpreter.os_pid(first)
    assert Memory.rss(first_os_pid) < 150 * 1024 * 1024

    # 200 MB of bytes that stay (and are written, so they are resident).
    assert {:ok, nil} = Snex.pyeval(pool, "import sys\nsys.ballast = b'x' * (200 * 1024 * 1024)")

    # Calls keep succeeding while the member is replaced.
    deadline = System.monotonic_time(:millisecond) + 30_000

    results =
      Stream.repeatedly(fn -> Snex.pyeval(pool, "import os\nreturn os.getpid()") end)
      |> Enum.reduce_while([], fn result, acc ->
        acc = [result | acc]

        if OSProcess.alive?(first_os_pid) and System.monotonic_time(:millisecond) < deadline,
          do: {:cont, acc},
          else: {:halt, acc}
      end)

    refute OSProcess.alive?(first_os_pid)
    assert Enum.all?(results, &match?({:ok, _}, &1))
    assert [other] = Snex.Pool.members(pool)
    refute other == first
    assert {:ok, nil} = Snex.pyeval(pool, "import sys\nreturn getattr(sys, 'ballast', None)")
  end

  test "the RSS of a process, from /proc and from ps" do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    os_pid = Snex.Interpreter.os_pid(i)
    before = Memory.rss(os_pid)
    {:ok, nil} = Snex.pyeval(i, "import sys\nsys.ballast = b'x' * (64 * 1024 * 1024)")
    proc = Memory.proc_rss(os_pid)
    ps = Memory.ps_rss(os_pid)
    assert proc - before > 60 * 1024 * 1024
    assert abs(proc - ps) < 8 * 1024 * 1024
    assert Memory.rss(999_999_999) == nil
  end
end
