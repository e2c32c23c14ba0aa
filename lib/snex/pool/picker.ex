defmodule Snex.Pool.Picker do
  @moduledoc false
  # Picks the member of a pool a request goes to, in the calling process: from the pool's row
  # in `Snex.Pool.Table` and the pending counts of the members' NIF resources, without a
  # message to any process.
  #
  # The least-loaded member is the one with the fewest requests waiting for their reply
  # (`pending` of `Snex.Native.stats/1`); members that reached `max_calls` come last. The scan
  # stops at the first idle member. For a request (`:any`) it starts at the first member, so an
  # idle pool answers from the same, warm, Python process (waking a different idle process for
  # each call costs about 30 µs more per call, see `docs/decisions.md`); for an environment
  # (`:local`) it starts at the next member in turn, so that envs made on an idle pool (and the
  # state they will hold) are spread over the members. With `scope: :cluster`, a request goes
  # to another node when every local member is busier than that node's least-loaded one (from
  # its latest load summary).

  alias Snex.Pool.Table

  @type picked ::
          {:local, pid(), reference()} | {:remote, node(), {atom(), node()}} | :gone

  @doc """
  The member of pool `name` for a request: `:any` may pick another node's pool, `:local` only
  a member of this node. `:not_a_pool` when `name` is no pool's name.
  """
  @spec pick(term(), :any | :local) :: picked() | :not_a_pool
  def pick(name, where) do
    case Table.pool(name) do
      nil ->
        :not_a_pool

      {manager, members, max_calls, remotes} ->
        pick(name, where, manager, members, max_calls, remotes)
    end
  end

  defp pick(name, where, manager, members, max_calls, remotes) do
    case least_loaded(members, max_calls, manager, where) do
      nil ->
        if where == :any, do: remote(name, remotes, :infinity) || :gone, else: :gone

      {{_over, 0}, pid, res} ->
        {:local, pid, res}

      {{_over, load}, pid, res} ->
        (where == :any && remote(name, remotes, load)) || {:local, pid, res}
    end
  end

  defp least_loaded({}, _max_calls, _manager, _where), do: nil

  defp least_loaded(members, max_calls, manager, where) do
    n = tuple_size(members)

    start =
      if where == :local, do: rem(System.unique_integer([:monotonic, :positive]), n), else: 0

    scan(members, n, start, n, max_calls, manager, nil)
  end

  defp scan(_members, _n, _i, 0, _max_calls, _manager, best), do: best

  defp scan(members, n, i, left, max_calls, manager, best) do
    {pid, res} = elem(members, i)
    next = if i + 1 == n, do: 0, else: i + 1

    if Process.alive?(pid) do
      %{pending: pending, submitted: submitted} = Snex.Native.stats(res)
      over = max_calls != nil and submitted >= max_calls
      if over and Table.mark_due(pid, manager), do: send(manager, {:max_calls, pid})
      key = {over, pending}

      cond do
        key == {false, 0} ->
          {key, pid, res}

        best == nil or key < elem(best, 0) ->
          scan(members, n, next, left - 1, max_calls, manager, {key, pid, res})

        true ->
          scan(members, n, next, left - 1, max_calls, manager, best)
      end
    else
      scan(members, n, next, left - 1, max_calls, manager, best)
    end
  end

  # The node whose least-loaded member is less loaded than `local_load`, if any.
  defp remote(_name, [], _local_load), do: nil

  defp remote(name, nodes, local_load) do
    now = System.monotonic_time(:millisecond)

    best =
      Enum.reduce(nodes, nil, fn node, best ->
        case Table.remote_load(name, node, now) do
          nil -> best
          load when best == nil or load < elem(best, 1) -> {node, load}
          _ -> best
        end
      end)

    case best do
      {node, load} when load < local_load ->
        Table.bump_remote(name, node)
        {:remote, node, {name, node}}

      _ ->
        nil
    end
  end
end
