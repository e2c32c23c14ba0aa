defmodule Snex.PoolClusterTest do
  # Distribution is global to the node: not async.
  use ExUnit.Case, async: false

  import Snex.Test.Pools

  alias Snex.Error
  alias Snex.Pool.Table
  alias Snex.Test.{Cluster, OSProcess}

  @moduletag timeout: 180_000

  @pool :snex_cluster_pool
  @opts [name: @pool, size: 1, scope: :cluster, summary_interval: 50]

  setup_all do
    {peer, node} = Cluster.start_peer(:"snex_pool_peer_#{System.unique_integer([:positive])}")
    on_exit(fn -> catch_exit(:peer.stop(peer)) end)
    {:ok, _} = :erpc.call(node, Cluster, :start_pool, [@opts])
    start_supervised!({Snex.Pool, @opts})
    assert known?(node)
    {:ok, node: node, remote_os_pid: os_pid({@pool, node})}
  end

  # Held requests wait for a release file: a caller's death does not cancel a request it made
  # on another node.
  setup do
    {:ok, release: release_file()}
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
    {task, local} = hold(@pool, context.release)
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
    release(context.release)
    assert {:ok, ^local} = Task.await(task)
  end

  test "a node going down with calls in flight", %{node: node} = context do
    {peer, doomed} = Cluster.start_peer(:"snex_pool_doomed_#{System.unique_integer([:positive])}")
    {:ok, _} = :erpc.call(doomed, Cluster, :start_pool, [@opts])
    doomed_os_pid = os_pid({@pool, doomed})

    # The local member and the first peer's are busy: the next call goes to the doomed node.
    {local_task, _} = hold({@pool, node()}, context.release)
    {peer_task, _} = hold({@pool, node}, context.release)
    assert known?(node, 1)
    assert known?(doomed, 0)
    {in_flight, ^doomed_os_pid} = hold(@pool, context.release)

    :peer.stop(peer)
    assert {:error, %Error{code: :call_failed}} = Task.await(in_flight, 10_000)

    # The pool forgets the node and serves the next calls.
    assert OSProcess.eventually(fn -> doomed not in elem(Table.pool(@pool), 3) end)
    assert {:ok, 1} = Snex.pyeval(@pool, "return 1")
    assert {:ok, 1} = Snex.pyeval(@pool, "return 1")

    release(context.release)
    for task <- [local_task, peer_task], do: assert({:ok, _} = Task.await(task))
  end
end
