defmodule Snex.Pool.Cluster do
  @moduledoc false
  # Pools of the same name on several nodes (`scope: :cluster`): their managers join one `:pg`
  # group of the `Snex.Pool.Scope` scope (started by the application on every node) and send
  # each other a load summary every `summary_interval` ms, which the receiving manager writes
  # into `Snex.Pool.Table`, so that picking a member never waits for another node.

  alias Snex.Pool.Table

  @scope Snex.Pool.Scope

  @doc "The child spec of the `:pg` scope."
  @spec scope_child_spec() :: Supervisor.child_spec()
  def scope_child_spec, do: %{id: @scope, start: {:pg, :start_link, [@scope]}}

  @doc "The calling manager joins the group of pool `name`."
  @spec join(atom()) :: :ok
  def join(name), do: :pg.join(@scope, group(name), self())

  @doc "The managers of pool `name` on every node (the caller's included)."
  @spec managers(atom()) :: [pid()]
  def managers(name), do: :pg.get_members(@scope, group(name))

  @doc "Sends the calling manager's load to the managers of pool `name` on the other nodes."
  @spec broadcast(atom(), non_neg_integer(), pos_integer()) :: :ok
  def broadcast(name, load, interval) do
    for pid <- managers(name), node(pid) != node() do
      send(pid, {:snex_pool_load, self(), load, interval})
    end

    :ok
  end

  @doc """
  Records a summary from `manager` (another node's) in `remotes` (manager pid => node) and in
  the table; a summary is valid for three of its sender's intervals. Returns the new remotes
  and whether the set of nodes changed.
  """
  @spec record(atom(), map(), pid(), non_neg_integer(), pos_integer()) :: {map(), boolean()}
  def record(name, remotes, manager, load, interval) do
    Table.put_remote(name, node(manager), load, 3 * interval)

    if Map.has_key?(remotes, manager) do
      {remotes, false}
    else
      Process.monitor(manager)
      {Map.put(remotes, manager, node(manager)), true}
    end
  end

  @doc "Forgets `manager` (it went down, or its node did)."
  @spec forget(atom(), map(), pid()) :: {map(), boolean()}
  def forget(name, remotes, manager) do
    case Map.pop(remotes, manager) do
      {nil, remotes} ->
        {remotes, false}

      {node, remotes} ->
        Table.delete_remote(name, node)
        {remotes, true}
    end
  end

  defp group(name), do: {Snex.Pool, name}
end
