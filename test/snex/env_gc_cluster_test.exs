defmodule Snex.EnvGcClusterTest do
  # `Snex.Env.disable_gc/1` and `Snex.destroy_env/1` from any node. Distribution is global to
  # the node: not async.
  use ExUnit.Case, async: false

  alias Snex.Error
  alias Snex.Test.{Cluster, OSProcess}

  @moduletag timeout: 120_000

  setup_all do
    {peer, node} = Cluster.start_peer(:"snex_gc_peer_#{System.unique_integer([:positive])}")
    on_exit(fn -> catch_exit(:peer.stop(peer)) end)
    {:ok, _} = :erpc.call(node, Cluster, :start_interpreter, [[name: :gc_python]])
    {:ok, node: node}
  end

  setup do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    {:ok, interpreter: i}
  end

  describe "an env whose home is another node" do
    test "it is freed when its last reference there is gone (the control case)", %{node: node} do
      {:ok, holder, env} = :erpc.call(node, Cluster, :hold_env, [:gc_python, %{"kept" => 1}])
      assert {:ok, 1} = Snex.pyeval(env, "return kept")
      :ok = :erpc.call(node, Cluster, :release, [holder])

      assert OSProcess.eventually(fn ->
               match?({:error, %Error{code: :env_not_found}}, Snex.pyeval(env, "return kept"))
             end)
    end

    test "disable_gc/1 from here keeps it alive until destroy_env/1", %{node: node} do
      {:ok, holder, env} = :erpc.call(node, Cluster, :hold_env, [:gc_python, %{"kept" => 2}])

      assert Snex.Env.disable_gc(env) == env
      :ok = :erpc.call(node, Cluster, :release, [holder])
      assert {:ok, 2} = Snex.pyeval(env, "return kept")

      assert :ok = Snex.destroy_env(env)
      assert {:error, %Error{code: :env_not_found}} = Snex.pyeval(env, "return kept")
    end
  end

  describe "an env whose home is this node" do
    test "disable_gc/1 called on another node keeps it alive", %{node: node, interpreter: i} do
      made = make_in_process(i, fn env -> :erpc.call(node, Snex.Env, :disable_gc, [env]) end)
      assert_kept(i, made)
    end

    test "disable_gc/1 on a copy that went to another node and back", %{
      node: node,
      interpreter: i
    } do
      made =
        make_in_process(i, fn env ->
          back = :erpc.call(node, :erlang, :hd, [[env]])
          Snex.Env.disable_gc(back)
        end)

      assert_kept(i, made)
    end

    # The same single collection and round trip as assert_kept/2: they are enough to see the
    # env freed, so the tests above would see it too.
    test "without disable_gc/1 it is freed (the control case)", %{interpreter: i} do
      env = after_collection(i, make_in_process(i, fn env -> env end))
      assert {:error, %Error{code: :env_not_found}} = Snex.pyeval(env, "return kept")
    end
  end

  test "destroy_env/1 is idempotent across nodes", %{node: node, interpreter: i} do
    {:ok, remote_env} = :erpc.call(node, Cluster, :make_kept_env, [:gc_python, %{"kept" => 4}])
    {:ok, local_env} = Snex.make_env(i, %{"kept" => 5})

    for env <- [remote_env, local_env] do
      assert :ok = :erpc.call(node, Snex, :destroy_env, [env])
      assert :ok = Snex.destroy_env(env)
      assert :ok = :erpc.call(node, Snex, :destroy_env, [env])
      assert :ok = Snex.destroy_env(env)
      assert {:error, %Error{code: :env_not_found}} = Snex.pyeval(env, "return kept")

      assert {:error, %Error{code: :env_not_found}} =
               :erpc.call(node, Snex, :pyeval, [env, "return kept"])
    end
  end

  # Makes an env (`kept = 3`) in a process that runs `fun` on it and exits; returns the env's
  # id and interpreter (without its reference, so that this process holds none).
  defp make_in_process(i, fun) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        {:ok, env} = Snex.make_env(i, %{"kept" => 3})
        fun.(env)
        send(parent, {:made, Map.take(env, [:id, :interpreter])})
      end)

    assert_receive {:made, made}, 10_000
    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
    made
  end

  # After make_in_process/2 (its maker is gone with its heap): collects this process's
  # garbage and makes a round trip, which lets Python read any destroy frame sent before it;
  # returns a handle rebuilt from the env's id.
  defp after_collection(i, %{id: id}) do
    :erlang.garbage_collect()
    {:ok, _} = Snex.pyeval(i, "return 0")
    %Snex.Env{id: id, interpreter: i, ref: make_ref()}
  end

  # The env made by make_in_process/2 is still there after after_collection/2; destroys it.
  defp assert_kept(i, made) do
    env = after_collection(i, made)
    assert {:ok, 3} = Snex.pyeval(env, "return kept")
    :ok = Snex.destroy_env(env)
  end
end
