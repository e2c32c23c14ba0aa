defmodule Snex.LoggingMetadataTest do
  # The metadata of `snex.LoggingHandler`'s messages, as Snex 0.4 documents it.
  use Snex.InterpreterCase, async: true

  import ExUnit.CaptureLog

  alias Snex.Test.LogForwarder

  # Logs `message` through a LoggingHandler built with `handler_args`, from `where`
  # ("main", "thread" or "task"), and returns what the record itself says, for comparison.
  defp log(env, message, handler_args, where, extra \\ "{}") do
    code = """
    import asyncio, logging, threading
    logger = logging.getLogger("snex_meta_" + where)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    records = []
    class Capture(logging.Handler):
        def emit(self, record):
            records.append(record)
    logger.handlers = [Capture(), snex.LoggingHandler(#{handler_args})]

    def log_it():
        try:
            {}["missing"]
        except KeyError:
            logger.exception(message, extra=#{extra})

    async def in_task():
        log_it()

    if where == "thread":
        t = threading.Thread(target=log_it, name="snex-meta-thread")
        t.start(); t.join()
    elif where == "task":
        await asyncio.create_task(in_task(), name="snex-meta-task")
    else:
        log_it()
    r = records[0]
    return {
        "file": r.pathname, "line": r.lineno, "time": int(r.created * 1_000_000),
        "module": r.module, "function": r.funcName, "process": r.process,
        "thread": r.thread, "thread_name": r.threadName,
        "task_name": getattr(r, "taskName", None),
    }
    """

    LogForwarder.attach()

    capture_log(fn ->
      {:ok, record} = Snex.pyeval(env, code, %{"message" => message, "where" => where})
      [{level, _text, meta}] = LogForwarder.await([message])
      send(self(), {:logged, level, meta, record})
    end)

    assert_received {:logged, level, meta, record}
    {level, meta, record}
  end

  test "the metadata Snex 0.4 documents", %{interpreter: i, env: env} do
    {level, meta, record} =
      log(
        env,
        "meta main",
        "default_metadata={'request_id': 7, 'user': 'ann'}, extra_metadata_keys=['tenant', 'absent']",
        "main",
        "{'tenant': 'acme'}"
      )

    assert level == :error
    # default_metadata, keys as given (no prefix)
    assert meta[:request_id] == 7
    assert meta[:user] == "ann"
    refute Map.has_key?(meta, :python_request_id)
    # the defaults
    assert meta[:application] == :snex
    assert Enum.take(meta[:domain], -2) == [:snex, :python]
    # from the record
    assert meta[:file] == record["file"]
    assert meta[:line] == record["line"]
    assert meta[:time] == record["time"]
    assert meta[:python_logger_name] == "snex_meta_main"
    assert meta[:python_log_level] == "ERROR"
    assert meta[:python_module] == record["module"]
    assert meta[:python_function] == "log_it"
    assert meta[:python_process_id] == Snex.Interpreter.os_pid(i)
    assert meta[:python_thread_id] == record["thread"]
    assert meta[:python_thread_name] == "MainThread"
    assert meta[:python_exception] == "KeyError"
    # extra_metadata_keys found on the record
    assert meta[:tenant] == "acme"
    refute Map.has_key?(meta, :absent)
  end

  test "the time is the record's, in µs since the epoch", %{env: env} do
    before = System.os_time(:microsecond)
    {_level, meta, _record} = log(env, "meta time", "", "main")
    assert meta[:time] >= before - 1_000_000
    assert meta[:time] <= System.os_time(:microsecond)
  end

  test "default_metadata may set application and domain; extra keys override", %{env: env} do
    {_level, meta, _record} =
      log(
        env,
        "meta override",
        "default_metadata={'application': snex.Atom('mine'), 'domain': [snex.Atom('mine')], " <>
          "'line': -1}, extra_metadata_keys=['python_module']",
        "main",
        "{'python_module': 'from extra'}"
      )

    assert meta[:application] == :mine
    assert Enum.take(meta[:domain], -1) == [:mine]
    refute :snex in meta[:domain]
    # `line` is always set from the record, after default_metadata
    assert meta[:line] > 0
    # extra_metadata_keys come last and win
    assert meta[:python_module] == "from extra"
  end

  test "from another thread: that thread's id and name", %{env: env} do
    {_level, meta, record} = log(env, "meta thread", "", "thread")
    assert meta[:python_thread_name] == "snex-meta-thread"
    assert meta[:python_thread_id] == record["thread"]
    assert meta[:python_function] == "log_it"
  end

  test "in an asyncio task: the task's name where Python records it", %{env: env} do
    {_level, meta, record} = log(env, "meta task", "", "task")

    # Python 3.12+ records the task's name (with eager tasks, the name it had when its first
    # step ran: CPython names a task after that step); older Pythons do not.
    case record["task_name"] do
      nil -> refute Map.has_key?(meta, :python_task_name)
      name -> assert meta[:python_task_name] == name
    end
  end

  test "the handler's options are keyword-only", %{env: env} do
    assert {:error, %Snex.Error{reason: reason}} =
             Snex.pyeval(env, "snex.LoggingHandler(0, {'a': 1})")

    assert reason =~ "positional"
  end
end
