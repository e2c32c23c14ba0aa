defmodule Snex.Pool.Table do
  @moduledoc false
  # The public ETS table through which callers find a pool's members without a process hop,
  # and the process that owns it. Each pool's manager is the only writer of its rows:
  #
  #   {name, manager, {members, max_calls, remote_nodes}}
  #       the pool, keyed by its name: `members` is a tuple of `{pid, resource}` of the active
  #       local members, `remote_nodes` the nodes with a pool of the same name (`scope:
  #       :cluster`) whose load summary arrived
  #   {{:remote, name, node}, manager, load, expires_at}
  #       the latest load summary of `node` (its least-loaded member's pending requests),
  #       ignored after `expires_at` (monotonic ms); callers add one for each request they send
  #       there, until the next summary
  #   {{:manager, manager}, manager, name}
  #       the name of the pool whose manager is `manager`, so that its pid works as the name
  #   {{:due, member_pid}, manager, nil}
  #       a member that reached `max_calls`, so that only one caller tells the manager
  #   {{:closing, member_pid}, manager, nil}
  #       a retiring member past `retire_timeout`: calls on its envs are refused
  #
  # When a manager dies, this process deletes its rows.
  use GenServer

  @table __MODULE__

  @doc "Starts the owner of the table."
  @spec start_link(term()) :: GenServer.on_start()
  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc "Registers the calling manager of pool `name`: its rows are deleted when it dies."
  @spec register(atom()) :: :ok
  def register(name) do
    :ok = GenServer.call(__MODULE__, {:register, self()})
    :ets.insert(@table, {{:manager, self()}, self(), name})
    :ok
  end

  @doc "The name of the pool whose manager is `pid`, or nil."
  @spec name_of(pid()) :: atom() | nil
  def name_of(pid) do
    case :ets.lookup(@table, {:manager, pid}) do
      [{_, _, name}] -> name
      [] -> nil
    end
  end

  @doc "Writes the row of pool `name` (from its manager)."
  @spec put_pool(atom(), tuple(), pos_integer() | nil, [node()]) :: true
  def put_pool(name, members, max_calls, remote_nodes),
    do: :ets.insert(@table, {name, self(), {members, max_calls, remote_nodes}})

  @doc "The row of pool `name`: `{manager, members, max_calls, remote_nodes}`, or nil."
  @spec pool(term()) :: {pid(), tuple(), pos_integer() | nil, [node()]} | nil
  def pool(name) do
    case :ets.lookup(@table, name) do
      [{^name, manager, {members, max_calls, remotes}}] when is_pid(manager) ->
        {manager, members, max_calls, remotes}

      _ ->
        nil
    end
  end

  @doc "Records the load summary of `node` for pool `name`, valid for `ttl` ms."
  @spec put_remote(atom(), node(), non_neg_integer(), pos_integer()) :: true
  def put_remote(name, node, load, ttl) do
    expires = System.monotonic_time(:millisecond) + ttl
    :ets.insert(@table, {{:remote, name, node}, self(), load, expires})
  end

  @doc "Forgets the load summary of `node`."
  @spec delete_remote(atom(), node()) :: true
  def delete_remote(name, node), do: :ets.delete(@table, {:remote, name, node})

  @doc "The load of `node` for pool `name` if its summary has not expired, else nil."
  @spec remote_load(atom(), node(), integer()) :: non_neg_integer() | nil
  def remote_load(name, node, now) do
    case :ets.lookup(@table, {:remote, name, node}) do
      [{_, _, load, expires}] when expires > now -> load
      _ -> nil
    end
  end

  @doc "Counts one more request sent to `node` until its next summary."
  @spec bump_remote(atom(), node()) :: :ok
  def bump_remote(name, node) do
    :ets.update_counter(@table, {:remote, name, node}, {3, 1})
    :ok
  rescue
    # The summary was deleted meanwhile.
    ArgumentError -> :ok
  end

  @doc "Marks `member` as having reached `max_calls`; true for the first caller only."
  @spec mark_due(pid(), pid()) :: boolean()
  def mark_due(member, manager), do: :ets.insert_new(@table, {{:due, member}, manager, nil})

  @doc "Refuses calls on the envs of `member` from now on."
  @spec close(pid()) :: true
  def close(member), do: :ets.insert(@table, {{:closing, member}, self(), nil})

  @doc "Whether `member` refuses calls on its envs (false for any other pid)."
  @spec closing?(pid()) :: boolean()
  def closing?(member), do: :ets.member(@table, {:closing, member})

  @doc "Forgets the marks of `member` (it is gone)."
  @spec forget_member(pid()) :: true
  def forget_member(member) do
    :ets.delete(@table, {:due, member})
    :ets.delete(@table, {:closing, member})
  end

  @doc "Deletes every row of `manager`."
  @spec delete_manager(pid()) :: non_neg_integer()
  def delete_manager(manager) do
    :ets.select_delete(@table, [
      {{:_, :"$1", :_}, [{:"=:=", :"$1", manager}], [true]},
      {{:_, :"$1", :_, :_}, [{:"=:=", :"$1", manager}], [true]}
    ])
  end

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, nil}
  end

  @impl true
  def handle_call({:register, manager}, _from, state) do
    Process.monitor(manager)
    {:reply, :ok, state}
  end

  @impl true
  def handle_info({:DOWN, _ref, :process, manager, _reason}, state) do
    delete_manager(manager)
    {:noreply, state}
  end
end
