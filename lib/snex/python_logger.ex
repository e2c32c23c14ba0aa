defmodule Snex.PythonLogger do
  @moduledoc """
  The Elixir end of `snex.LoggingHandler`: Python log records arrive here (as casts) and go to
  `Logger` with the mapped level, the Python source location and timestamp, and metadata keys
  prefixed with `python_`.

  Each record also says which interpreter it comes from: `snex_interpreter` (the interpreter's
  pid), `snex_os_pid` (its Python's OS pid) and `snex_label` (its `:label`; a custom
  interpreter's module by default). Every callback from Python (`snex.call`, `snex.cast`) runs
  with this metadata, so whatever Elixir code it runs logs it too. The `pid` of a record is the
  short-lived process the record was handed to, not the interpreter's.

  In Python:

      import logging, snex
      logging.getLogger().addHandler(snex.LoggingHandler())
      logging.warning("disk %s is %d%% full", "/", 93)
  """
  require Logger

  @levels [:emergency, :alert, :critical, :error, :warning, :notice, :info, :debug]

  @doc false
  # Called by casts from Python with one map describing the record.
  @spec log(map()) :: :ok
  def log(%{} = record) do
    level = if record[:level] in @levels, do: record[:level], else: :info
    Logger.log(level, to_string(record[:message] || ""), metadata(record))
  end

  defp metadata(record) do
    base = [
      file: record[:file],
      line: record[:line],
      function: record[:function],
      python_logger: record[:logger],
      python_thread: record[:thread],
      python_process: record[:process],
      python_level: record[:levelname]
    ]

    time =
      case record[:time_us] do
        us when is_integer(us) -> [time: us]
        _ -> []
      end

    extra =
      for {key, value} <- Map.get(record, :metadata) || %{} do
        {:"python_#{key}", value}
      end

    Enum.reject(base ++ time ++ extra, fn {_, v} -> is_nil(v) end)
  end
end
