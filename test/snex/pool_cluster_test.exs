defmodule Snex.PoolClusterTest do
  # Distribution is global to the node: not async.
  use ExUnit.Case, async: false

  alias Snex.Error
  alias Snex.Pool.Table
  alias Snex.Test.{Cluster, OSProcess}

  @moduletag timeout: 180_000

  @pool :snex_cluster_pool
  @opts [name: @pool, size: 1, scope: :cluster, summary_interval: 50]

  # Holds a member until `release` exists (a caller's death does not cancel a request it made
  # on another node).
  @hold """
  import asyncio, os
  await snex.send(me, ('started', os.getpid()))
  while not os.path.exists(release):
      await asyncio.sleep(0.02)
  return os.getpid()
  """

  setup_all do
    {peer, node} = Cluster.start_peer(:"snex_pool_peer_#{System.unique_integer([:positive])}")
    on_exit(fn -> catch_exit(:peer.stop(peer)) end)
    {:ok, _} = :erpc.call(node, Cluster, :start_pool, [@opts])
    start_supervised!({Snex.Pool, @opts})
    assert known?(node)
    {:ok, node: node, remote_os_pid: os_pid({@pool, node})}
  end

  setup do
    release = Path.join(System.tmp_dir!(), "snex-pool-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm(release) end)
    {:ok, release: release}
  end

  defp os_pid(target) do
    {:ok, pid} = Snex.pyeval(target, "import os\nreturn os.getpid()")
    pid
  end

  # Whether this node has a fresh load summary of `node`'s pool (with load `load`, if given).
  defp known?(node, load \\ nil) do
    OSProcess.eventually(fn ->
      case Table.remote_load(@pool, node, System.monotonic_time(:millisecond)) do
        nil -> false
        known -> load == nil or known == load
      end
    end)
  end

  # Starts a request on `target` that holds a member until `release/1`; returns the task and
  # the member's OS pid.
  defp hold(target, %{release: release}) do
    me = self()
    vars = %{"me" => me, "release" => release}
    task = Task.async(fn -> Snex.pyeval(target, @hold, vars, timeout: :infinity) end)
    assert_receive {"started", os_pid}, 10_000
    {task, os_pid}
  end

  defp release(%{release: release}), do: File.write!(release, "")

  test "pools of the same name on two nodes join one :pg group", %{node: node} do
    managers = :pg.get_members(Snex.Pool.Scope, {Snex.Pool, @pool})
    assert managers |> Enum.map(&node/1) |> Enum.sort() == Enum.sort([node(), node])
  end

  test "calls prefer the local members", %{remote_os_pid: remote} do
    local = os_pid({@pool, node()})
    refute local == remote
    assert Enum.uniq(for _ <- 1..20, do: os_pid(@pool)) == [local]
  end

  test "a call goes to the other node when the local members are busier", context do
    %{node: node, remote_os_pid: remote} = context
    {task, local} = hold(@pool, context)
    refute local == remote
    assert known?(node, 0)
    assert os_pid(@pool) == remote
    # That call counts as one more on the other node until its next summary.
    assert known?(node, 0)
    assert {:ok, ^remote} = Snex.call(@pool, "os", "getpid")
    # {name, node} is that node's pool.
    assert os_pid({@pool, node}) == remote
    # Envs (and so streams) stay local: an env made from another node is not collected.
    assert {:ok, env} = Snex.make_env(@pool)
    assert node(Snex.Env.interpreter(env)) == node()
    release(context)
    assert {:ok, ^local} = Task.await(task)
  end

  test "a node going down with calls in flight", %{node: node} = context do
    {peer, doomed} = Cluster.start_peer(:"snex_pool_doomed_#{System.unique_integer([:positive])}")
    {:ok, _} = :erpc.call(doomed, Cluster, :start_pool, [@opts])
    doomed_os_pid = os_pid({@pool, doomed})

    # The local member and the first peer's are busy: the next call goes to the doomed node.
    {local_task, _} = hold({@pool, node()}, context)
    {peer_task, _} = hold({@pool, node}, context)
    assert known?(node, 1)
    assert known?(doomed, 0)
    {in_flight, ^doomed_os_pid} = hold(@pool, context)

    :peer.stop(peer)
    assert {:error, %Error{code: :call_failed}} = Task.await(in_flight, 10_000)

    # The pool forgets the node and serves the next calls.
    assert OSProcess.eventually(fn -> doomed not in elem(Table.pool(@pool), 3) end)
    assert {:ok, 1} = Snex.pyeval(@pool, "return 1")
    assert {:ok, 1} = Snex.pyeval(@pool, "return 1")

    release(context)
    for task <- [local_task, peer_task], do: assert({:ok, _} = Task.await(task))
  end
end
