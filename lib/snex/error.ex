defmodule Snex.Error do
  @moduledoc """
  The error of a Snex operation: `{:error, %Snex.Error{}}` from every public function.

  | code | meaning |
  |---|---|
  | `:python_runtime_error` | the Python code raised; `reason` is `str(exception)` (`"Name: <exception str() failed: ...>"` when that raises), `traceback` its lines, `python_type` the exception's class name (e.g. `"KeyError"`), to match on without parsing text |
  | `:env_not_found` | the environment was destroyed (or never existed in this interpreter) |
  | `:env_key_not_found` | `make_env(from: {env, only: names})` named a variable that does not exist |
  | `:response_timeout` | no reply within the call's `:timeout`; the request was cancelled in Python (see below) |
  | `:call_failed` | the interpreter stopped or crashed before replying; `reason` is its exit reason |
  | `:init_script_timeout` | the init script did not finish within `:init_script_timeout` |
  | `:interpreter_exited` | the Python process exited; `reason` is `{:exit_status, n}` (signal N gives 128+N; 74: Python could not write to Elixir), or `{:transport_closed, message}` / `{:protocol_error, message}` when Python was killed because its transport broke (see `Snex.Interpreter`) |
  | `:encode_error` | a value could not be sent to Python, or Python could not encode its result (also when the value's own code raised, e.g. a custom encoder: `traceback` is then that exception's) |
  | `:decode_error` | a value Python sent could not be turned into a term |
  | `:python_not_found` | the Python executable cannot be run: not on `PATH`, no such file, not executable, or the base Python of its virtual environment is missing (the message names the path, the version needed and the fix) |
  | `:python_too_old` | the Python is older than 3.10, which Snex needs |
  | `:internal_error` | anything else (e.g. the OS refused to start the process, or Snex's Python side failed while handling the request) |

  ## What a timeout does in Python

  On `:response_timeout` (and when the calling process dies) the request is cancelled in
  Python, and a reply that comes later is dropped:

    * if Python has not started its code when the cancellation reaches it, the code does
      not run;
    * if it is waiting at an `await`, `asyncio.CancelledError` is raised there;
    * if it is running synchronous code (code without `await`, or a stretch between two
      `await`s), Python is sent `SIGUSR2` and `asyncio.CancelledError` is raised in that code
      at once, between two bytecodes; this also interrupts `time.sleep`, blocking reads and
      plain loops such as `while True: pass`. The interpreter serves the next call right after.
      (A cancellation that lands in the very instant a blocking call such as `time.sleep`
      starts takes effect when that call returns.)

  `finally` blocks and `except` clauses run as for any exception. What is not interrupted:
  C code that never checks for signals (a long call into a C extension) until it returns to
  Python; code that catches `CancelledError` (or `BaseException`) and carries on; other
  threads; and, with a `:wrap_exec` wrapper that runs Python in another PID namespace or on
  another host (`docker`, `ssh`), synchronous code (no signal can be sent there), which then
  runs to its end while the interpreter waits.
  """

  @type code ::
          :python_runtime_error
          | :env_not_found
          | :env_key_not_found
          | :response_timeout
          | :call_failed
          | :init_script_timeout
          | :interpreter_exited
          | :encode_error
          | :decode_error
          | :python_not_found
          | :python_too_old
          | :internal_error

  @type t :: %__MODULE__{
          code: code(),
          reason: term(),
          traceback: [String.t()] | nil,
          python_type: String.t() | nil
        }

  defexception [:code, :reason, :traceback, :python_type]

  @impl true
  def message(%__MODULE__{code: code, reason: reason, traceback: traceback}) do
    base = "#{code}: #{format_reason(reason)}"

    case traceback do
      lines when is_list(lines) and lines != [] -> base <> "\n" <> IO.iodata_to_binary(lines)
      _ -> base
    end
  end

  defp format_reason(reason) when is_binary(reason), do: reason
  defp format_reason(%__MODULE__{} = inner), do: message(inner)
  defp format_reason(reason), do: inspect(reason)

  @doc false
  @spec new(code(), term(), [String.t()] | nil) :: t()
  def new(code, reason, traceback \\ nil),
    do: %__MODULE__{code: code, reason: reason, traceback: traceback}
end
