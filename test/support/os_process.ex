defmodule Snex.Test.OSProcess do
  @moduledoc false
  # Helpers to observe OS processes from tests.

  @doc "True while `pid` exists and is not a zombie."
  def alive?(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} -> not String.contains?(stat, ") Z ")
      {:error, _} -> false
    end
  end

  @doc "Waits up to `timeout` ms for `pid` to be gone; returns whether it is."
  def wait_gone(pid, timeout \\ 5_000), do: eventually(fn -> not alive?(pid) end, timeout)

  @doc """
  Polls `fun` every 20 ms until it returns a truthy value (returned) or `timeout` ms pass
  (`false`): for states no message tells of, such as an OS process being gone.
  """
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
