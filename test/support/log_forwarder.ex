defmodule Snex.Test.LogForwarder do
  @moduledoc false
  # An Erlang `:logger` handler that sends every log event's message to a test process, so that
  # a test can wait for a log line (logged by a process it does not know, such as the one a
  # cast from Python runs in) instead of sleeping and hoping.

  @doc """
  Forwards log events to the calling process as `{:snex_log, level, message, metadata}` until
  it exits.
  """
  def attach do
    id = :"snex_log_forwarder_#{System.unique_integer([:positive])}"
    :ok = :logger.add_handler(id, __MODULE__, %{level: :all, config: %{pid: self()}})
    ExUnit.Callbacks.on_exit(fn -> :logger.remove_handler(id) end)
  end

  @doc """
  Waits until forwarded messages match each of `patterns` (regexes or strings), in any order;
  returns the matching events as `{level, message, metadata}`, in the order of `patterns`.
  Messages that match no pattern (other tests log too) are skipped.
  """
  def await(patterns, timeout \\ 10_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    found = collect(patterns, %{}, deadline)
    Enum.map(patterns, &Map.fetch!(found, &1))
  end

  defp collect(patterns, found, deadline) do
    case Enum.reject(patterns, &Map.has_key?(found, &1)) do
      [] ->
        found

      missing ->
        receive do
          {:snex_log, level, message, meta} ->
            case Enum.find(missing, &(message =~ &1)) do
              nil ->
                collect(patterns, found, deadline)

              pattern ->
                collect(patterns, Map.put(found, pattern, {level, message, meta}), deadline)
            end
        after
          max(deadline - System.monotonic_time(:millisecond), 0) ->
            ExUnit.Assertions.flunk("no log message matching #{inspect(missing)}")
        end
    end
  end

  @doc false
  # The :logger handler callback.
  def log(%{level: level, msg: msg, meta: meta}, %{config: %{pid: pid}}),
    do: send(pid, {:snex_log, level, format(msg), meta})

  defp format({:string, chardata}), do: IO.chardata_to_string(chardata)
  defp format({:report, report}), do: inspect(report)
  defp format({format, args}), do: format |> :io_lib.format(args) |> IO.chardata_to_string()
end
