defmodule Snex.Test.OSProcess do
  @moduledoc false
  # Helpers to observe processes from tests: OS processes, and the restart of a registered
  # BEAM process.

  @doc "True while `pid` exists and is not a zombie."
  @spec alive?(pos_integer()) :: boolean()
  def alive?(pid) do
    case stat_fields(pid) do
      [state | _] -> state != "Z"
      nil -> false
    end
  end

  @doc """
  The fields of `/proc/<pid>/stat` after the command name (state, ppid, pgrp, ...), or `nil`
  if there is no such process.
  """
  @spec stat_fields(pos_integer() | String.t()) :: [String.t()] | nil
  def stat_fields(pid) do
    case File.read("/proc/#{pid}/stat") do
      # The command name is in parentheses and may hold ") " itself: the fields follow the last.
      {:ok, stat} -> stat |> String.split(") ") |> List.last() |> String.split()
      {:error, _} -> nil
    end
  end

  @doc "Waits up to `timeout` ms for `pid` to be gone; returns whether it is."
  @spec wait_gone(pos_integer(), non_neg_integer()) :: boolean()
  def wait_gone(pid, timeout \\ 5_000), do: eventually(fn -> not alive?(pid) end, timeout)

  @doc """
  Waits up to `timeout` ms for `name` to be registered to a process other than `old` (as after
  a supervisor restarted it); returns that process, or `false`.
  """
  @spec await_restarted(atom(), pid(), non_neg_integer()) :: pid() | false
  def await_restarted(name, old, timeout \\ 5_000) do
    eventually(
      fn ->
        case Process.whereis(name) do
          pid when is_pid(pid) and pid != old -> pid
          _ -> nil
        end
      end,
      timeout
    )
  end

  @doc """
  Polls `fun` every 20 ms until it returns a truthy value (returned) or `timeout` ms pass
  (`false`): for states no message tells of, such as an OS process being gone.
  """
  @spec eventually((() -> term()), non_neg_integer()) :: term()
  def eventually(fun, timeout \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_eventually(fun, deadline)
  end

  defp do_eventually(fun, deadline) do
    case fun.() do
      falsy when falsy in [nil, false] ->
        if System.monotonic_time(:millisecond) > deadline do
          false
        else
          receive do
          after
            20 -> do_eventually(fun, deadline)
          end
        end

      value ->
        value
    end
  end
end
