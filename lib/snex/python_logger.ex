defmodule Snex.PythonLogger do
  @moduledoc """
  The Elixir end of `snex.LoggingHandler`: Python log records arrive here (as casts) and go to
  `Logger` at the matching level, with the metadata the handler built (keys as they are, see
  below).

  Each record also says which interpreter it comes from: `snex_interpreter` (the interpreter's
  pid), `snex_os_pid` (its Python's OS pid) and `snex_label` (its `:label`; a custom
  interpreter's module by default). Every callback from Python (`snex.call`, `snex.cast`) runs
  with this metadata, so whatever Elixir code it runs logs it too. The `pid` of a record is the
  short-lived process the record was handed to, not the interpreter's.

  In Python:

      import logging, snex
      logging.getLogger().addHandler(snex.LoggingHandler(default_metadata={"request": 7}))
      logging.warning("disk %s is %d%% full", "/", 93)

  Metadata: the handler's `default_metadata`; `application: :snex` and `domain:
  [:snex, :python]` unless given there; `file`, `line`, `time` (µs since the epoch, the time of
  the Python record), `python_logger_name`, `python_log_level` (`"WARNING"`), `python_module`,
  `python_function`, and when set `python_process_id`, `python_thread_id`,
  `python_thread_name`, `python_task_name`, `python_exception` (the exception's class name);
  then the record's attributes named in `extra_metadata_keys`.
  """
  require Logger

  @levels [:emergency, :alert, :critical, :error, :warning, :notice, :info, :debug]

  @doc false
  # Called by casts from Python with one map describing the record.
  @spec log(map()) :: :ok
  def log(%{} = record) do
    level = if record[:level] in @levels, do: record[:level], else: :info
    # bare_log: the metadata is Python's, without the location of this function.
    Logger.bare_log(level, to_string(record[:message] || ""), metadata(record))
  end

  defp metadata(record) do
    case Map.get(record, :metadata) do
      %{} = metadata -> for {key, value} <- metadata, is_atom(key), do: {key, value}
      _ -> []
    end
  end
end
