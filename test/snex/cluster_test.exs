defmodule Snex.ClusterTest do
  # Distribution is global to the node: not async.
  use ExUnit.Case, async: false

  alias Snex.Error
  alias Snex.Test.Cluster

  @moduletag timeout: 120_000

  setup_all do
    {peer, node} = Cluster.start_peer(:"snex_peer_#{System.unique_integer([:positive])}")
    on_exit(fn -> catch_exit(:peer.stop(peer)) end)

    # An interpreter on the peer, registered by name there.
    {:ok, _} =
      :erpc.call(node, Cluster, :start_interpreter, [
        [name: :remote_python, init_script: "base = 100"]
      ])

    {:ok, node: node}
  end

  test "an interpreter registered by name is reached as {name, node}", %{node: node} do
    assert {:ok, 101} = Snex.pyeval({:remote_python, node}, "return base + 1")
  end

  test "an env made on node A is used from node B", %{node: node} do
    {:ok, env} = :erpc.call(node, Cluster, :make_kept_env, [:remote_python, %{"v" => 5}])
    assert {:ok, 105} = Snex.pyeval(env, "return base + v")
    assert {:ok, nil} = Snex.pyeval(env, "v = 6")
    assert {:ok, 6} = :erpc.call(node, Snex, :pyeval, [env, "return v"])

    # make_env(from:) with a remote env, and destroy_env from here.
    {:ok, copy} = Snex.make_env(from: env)
    assert {:ok, 6} = Snex.pyeval(copy, "return v")
    assert :ok = Snex.destroy_env(env)
    assert {:error, %Error{code: :env_not_found}} = Snex.pyeval(env, "return v")
    assert :ok = Snex.destroy_env(copy)
  end

  test "an env made from node B on A's interpreter works", %{node: node} do
    {:ok, env} = Snex.make_env({:remote_python, node}, %{"w" => 7})
    assert node(Snex.Env.interpreter(env)) == node
    assert {:ok, 107} = Snex.pyeval(env, "return base + w")
    :ok = Snex.destroy_env(env)
  end

  test "snex.send to {name, node} on a peer node", %{node: node} do
    :ok = :erpc.call(node, Cluster, :start_relay, [:snex_relay, self()])
    {:ok, i} = start_supervised({Snex.Interpreter, []})

    {:ok, nil} =
      Snex.pyeval(i, "await snex.send((snex.Atom('snex_relay'), node), 'over the wire')", %{
        "node" => node
      })

    assert_receive {:relayed, "over the wire"}, 5_000
  end

  test "errors and timeouts come back from the remote node", %{node: node} do
    assert {:error, %Error{code: :python_runtime_error}} =
             Snex.pyeval({:remote_python, node}, "raise ValueError('remote')")

    assert {:error, %Error{code: :response_timeout}} =
             Snex.pyeval({:remote_python, node}, "import asyncio\nawait asyncio.sleep(5)",
               timeout: 100
             )
  end

  test "a node going away while a call is pending gives call_failed" do
    {peer, node} = Cluster.start_peer(:"snex_doomed_#{System.unique_integer([:positive])}")

    {:ok, _} = :erpc.call(node, Cluster, :start_interpreter, [[name: :doomed_python]])

    code = "import asyncio\nawait snex.send(me, 'pending')\nawait asyncio.sleep(30)"
    me = self()

    task =
      Task.async(fn ->
        Snex.pyeval({:doomed_python, node}, code, %{"me" => me}, timeout: :infinity)
      end)

    assert_receive "pending", 10_000
    :peer.stop(peer)
    assert {:error, %Error{code: :call_failed}} = Task.await(task, 10_000)
  end
end
