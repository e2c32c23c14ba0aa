defmodule Snex.Pool.Manager do
  @moduledoc false
  # The process of a pool, registered under the pool's name: it starts the members (linked to
  # it, so they die with it), publishes the active ones in `Snex.Pool.Table`, replaces a member
  # that dies, retires members (`max_calls`, `max_memory`) and, with `scope: :cluster`,
  # exchanges load summaries with the pools of the same name on other nodes. It is not on the
  # path of requests: callers pick a member from the table (`Snex.Pool.Picker`).
  #
  # A member is `:starting` (started, its init script not yet done), `:active` (in the table;
  # `due` once it is to be retired and its replacement is starting), `:retiring` (out of the
  # table, finishing its work) or `:stopping`. Members start with `sync_start?: false`, so that
  # they start in parallel and the manager never waits for Python; a small linked process
  # reports when one is ready.
  #
  # Retiring: the replacement starts first and takes the retiring member's place in the table
  # when it is ready, so the pool never has fewer active members because of recycling. The
  # retiring member is stopped once nothing is pending on it and it has been quiet (nothing
  # submitted) for `retire_grace` ms, or, if its envs keep it busy, once its pending requests
  # are done after `retire_timeout` ms (calls on its envs are refused from then on).
  use GenServer

  alias Snex.Pool.{Cluster, Memory, Options, Table}

  # How often retiring members are checked.
  @drain_interval 50
  # How long stopping the members may take when the pool stops.
  @stop_timeout 5_000

  @doc "Starts the manager of a pool, registered under its name."
  @spec start_link(Options.t()) :: GenServer.on_start()
  def start_link(%Options{name: name} = options),
    do: GenServer.start_link(__MODULE__, options, name: name)

  ## Start-up

  @impl true
  def init(%Options{interpreter: {module, opts}} = options) do
    Process.flag(:trap_exit, true)
    :ok = Table.register(options.name)
    member_opts = Keyword.put(opts, :sync_start?, false)

    state = %{
      # The members' options stay in this closure, where crash reports do not show them.
      start: fn -> module.start_link(member_opts) end,
      options: %{options | interpreter: module},
      members: %{},
      order: [],
      restarts: [],
      remotes: %{},
      draining: false
    }

    state = Enum.reduce(1..options.size, state, fn _, state -> start_member(state, :fill) end)

    case await_started(state) do
      {:ok, state} ->
        publish(state)
        if options.scope == :cluster, do: start_cluster(state)
        if options.max_calls || options.max_memory, do: schedule(:check, options.check_interval)
        {:ok, state}

      {:error, reason, state} ->
        stop_members(state)
        Table.delete_manager(self())
        {:stop, reason}
    end
  end

  # Waits until every first member is ready; the first that fails fails the pool's start.
  defp await_started(state) do
    if Enum.any?(state.members, fn {_, m} -> m.status == :starting end) do
      receive do
        {:member_ready, _, _} = ready ->
          {:noreply, state} = handle_info(ready, state)
          await_started(state)

        {:start_failed, _purpose, reason} ->
          {:error, reason, state}

        {:EXIT, pid, reason} ->
          cond do
            Map.has_key?(state.members, pid) ->
              {:error, reason, %{state | members: Map.delete(state.members, pid)}}

            reason == :normal ->
              await_started(state)

            # The parent went away while the pool was starting.
            true ->
              {:error, reason, state}
          end
      end
    else
      {:ok, state}
    end
  end

  defp start_cluster(state) do
    Cluster.join(state.options.name)
    send(self(), :summary)
  end

  ## Requests

  @impl true
  def handle_call(:members, _from, state), do: {:reply, state.order, state}

  # A pool is not an interpreter: `Snex.Interpreter` functions on it get an error.
  def handle_call(_request, _from, state), do: {:reply, {:error, :not_an_interpreter}, state}

  ## Members

  @impl true
  def handle_info({:member_ready, pid, res}, state) when res != nil do
    case state.members do
      %{^pid => %{status: :starting, purpose: purpose}} ->
        member = %{status: :active, res: res, os_pid: Snex.Native.os_pid(res), due: false}
        state = put_in(state.members[pid], member)

        state =
          case purpose do
            {:replace, old} -> replace(state, old, pid)
            :fill -> %{state | order: state.order ++ [pid]}
          end

        publish(state)
        {:noreply, state}

      _ ->
        {:noreply, state}
    end
  end

  # It died before it was ready: its exit follows.
  def handle_info({:member_ready, _pid, nil}, state), do: {:noreply, state}

  def handle_info({:start_failed, purpose, reason}, state),
    do: restart(state, purpose, reason)

  def handle_info({:EXIT, pid, reason}, state) do
    case Map.pop(state.members, pid) do
      {nil, _} ->
        # A readiness reporter's exit.
        {:noreply, state}

      {%{status: status}, members} when status in [:retiring, :stopping] ->
        Table.forget_member(pid)
        {:noreply, %{state | members: members}}

      {%{status: :active, due: due}, members} ->
        Table.forget_member(pid)
        state = %{state | members: members, order: List.delete(state.order, pid)}
        publish(state)

        if due do
          # Its replacement is starting already: it now fills the free place.
          {:noreply, update_purpose(state, {:replace, pid}, :fill)}
        else
          restart(state, :fill, reason)
        end

      {%{status: :starting, purpose: purpose}, members} ->
        restart(%{state | members: members}, purpose, reason)
    end
  end

  # A caller found that `pid` reached `max_calls`.
  def handle_info({:max_calls, pid}, state), do: {:noreply, retire(state, pid)}

  def handle_info(:check, state) do
    %Options{max_calls: max_calls, max_memory: max_memory, check_interval: interval} =
      state.options

    due =
      for {pid, %{status: :active, due: false} = m} <- state.members,
          over_calls?(m, max_calls) or over_memory?(m, max_memory),
          do: pid

    schedule(:check, interval)
    {:noreply, Enum.reduce(due, state, &retire(&2, &1))}
  end

  def handle_info(:drain, state) do
    now = System.monotonic_time(:millisecond)
    state = Enum.reduce(state.members, state, fn member, state -> drain(state, member, now) end)
    {:noreply, schedule_drain(%{state | draining: false})}
  end

  ## Other nodes

  def handle_info(:summary, state) do
    %Options{name: name, summary_interval: interval} = state.options

    case load(state) do
      nil -> :ok
      load -> Cluster.broadcast(name, load, interval)
    end

    schedule(:summary, interval)
    {:noreply, state}
  end

  def handle_info({:snex_pool_load, manager, load, interval}, state) do
    {remotes, changed} =
      Cluster.record(state.options.name, state.remotes, manager, load, interval)

    state = %{state | remotes: remotes}
    if changed, do: publish(state)
    {:noreply, state}
  end

  def handle_info({:DOWN, _ref, :process, manager, _reason}, state) do
    {remotes, changed} = Cluster.forget(state.options.name, state.remotes, manager)
    state = %{state | remotes: remotes}
    if changed, do: publish(state)
    {:noreply, state}
  end

  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    Table.delete_manager(self())
    stop_members(state)
    :ok
  end

  ## Helpers

  defp start_member(state, purpose) do
    case safe_start(state.start) do
      {:ok, pid} ->
        manager = self()
        spawn_link(fn -> send(manager, {:member_ready, pid, Snex.Interpreter.resource(pid)}) end)
        put_in(state.members[pid], %{status: :starting, purpose: purpose})

      {:error, reason} ->
        send(self(), {:start_failed, purpose, reason})
        state
    end
  end

  defp safe_start(start) do
    case start.() do
      {:ok, pid} -> {:ok, pid}
      {:error, reason} -> {:error, reason}
      other -> {:error, {:bad_start_result, other}}
    end
  catch
    kind, reason -> {:error, {kind, reason}}
  end

  # A member died or could not start: start another unless that happens too often.
  defp restart(state, purpose, reason) do
    now = System.monotonic_time(:millisecond)
    %Options{max_restarts: max, max_seconds: seconds} = state.options
    restarts = [now | Enum.take_while(state.restarts, &(&1 > now - seconds * 1000))]

    if length(restarts) > max do
      {:stop, {:too_many_member_restarts, reason}, %{state | restarts: restarts}}
    else
      purpose =
        case purpose do
          {:replace, old} -> if active?(state, old), do: purpose, else: :fill
          :fill -> :fill
        end

      {:noreply, start_member(%{state | restarts: restarts}, purpose)}
    end
  end

  defp active?(state, pid), do: match?(%{^pid => %{status: :active}}, state.members)

  # `new` is ready and takes the place of `old`, which retires.
  defp replace(state, old, new) do
    if active?(state, old) do
      state = %{state | order: Enum.map(state.order, &if(&1 == old, do: new, else: &1))}
      %{res: res} = member = state.members[old]
      now = System.monotonic_time(:millisecond)

      retiring =
        Map.merge(member, %{
          status: :retiring,
          retired_at: now,
          quiet_since: now,
          submitted: Snex.Native.stats(res).submitted
        })

      schedule_drain(put_in(state.members[old], retiring))
    else
      %{state | order: state.order ++ [new]}
    end
  end

  # Starts the replacement of an active member; it retires once the replacement is ready.
  defp retire(state, pid) do
    case state.members do
      %{^pid => %{status: :active, due: false} = m} ->
        state = put_in(state.members[pid], %{m | due: true})
        start_member(state, {:replace, pid})

      _ ->
        state
    end
  end

  defp update_purpose(state, from, to) do
    members =
      Map.new(state.members, fn
        {pid, %{status: :starting, purpose: ^from} = m} -> {pid, %{m | purpose: to}}
        other -> other
      end)

    %{state | members: members}
  end

  defp drain(state, {pid, %{status: :retiring, res: res} = m}, now) do
    %Options{retire_grace: grace, retire_timeout: timeout} = state.options
    # Past the timeout, calls on its envs are refused, so that what is pending drains.
    timed_out = now - m.retired_at >= timeout
    if timed_out, do: Table.close(pid)
    %{pending: pending, submitted: submitted} = Snex.Native.stats(res)
    active = pending > 0 or submitted != m.submitted
    quiet_since = if active, do: now, else: m.quiet_since

    if pending == 0 and (now - quiet_since >= grace or timed_out) do
      Process.exit(pid, :shutdown)
      put_in(state.members[pid], %{status: :stopping})
    else
      put_in(state.members[pid], %{m | quiet_since: quiet_since, submitted: submitted})
    end
  end

  defp drain(state, _member, _now), do: state

  defp schedule_drain(%{draining: true} = state), do: state

  defp schedule_drain(state) do
    if Enum.any?(state.members, fn {_, m} -> m.status == :retiring end) do
      schedule(:drain, @drain_interval)
      %{state | draining: true}
    else
      state
    end
  end

  defp over_calls?(_member, nil), do: false
  defp over_calls?(%{res: res}, max), do: Snex.Native.stats(res).submitted >= max

  defp over_memory?(_member, nil), do: false

  defp over_memory?(%{os_pid: os_pid}, max) do
    case Memory.rss(os_pid) do
      nil -> false
      rss -> rss > max
    end
  end

  # The pending requests of the least-loaded active member, or nil without one.
  defp load(state) do
    state.order
    |> Enum.map(fn pid -> Snex.Native.stats(state.members[pid].res).pending end)
    |> Enum.min(fn -> nil end)
  end

  defp publish(state) do
    members = List.to_tuple(for pid <- state.order, do: {pid, state.members[pid].res})
    remote_nodes = state.remotes |> Map.values() |> Enum.uniq()
    Table.put_pool(state.options.name, members, state.options.max_calls, remote_nodes)
  end

  defp schedule(message, ms), do: Process.send_after(self(), message, ms)

  # Stops every member and waits for them (a bounded time, then kills the rest).
  defp stop_members(state) do
    monitors =
      for {pid, _} <- state.members do
        Process.exit(pid, :shutdown)
        {pid, Process.monitor(pid)}
      end

    deadline = System.monotonic_time(:millisecond) + @stop_timeout

    Enum.each(monitors, fn {pid, ref} ->
      receive do
        {:DOWN, ^ref, :process, _, _} -> :ok
      after
        max(deadline - System.monotonic_time(:millisecond), 0) ->
          Process.exit(pid, :kill)

          receive do
            {:DOWN, ^ref, :process, _, _} -> :ok
          end
      end
    end)
  end
end
