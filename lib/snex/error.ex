defmodule Snex.Error do
  @moduledoc """
  The error of a Snex operation: `{:error, %Snex.Error{}}` from every public function.

  | code | meaning |
  |---|---|
  | `:python_runtime_error` | the Python code raised; `reason` is `str(exception)`, `traceback` its lines |
  | `:env_not_found` | the environment was destroyed (or never existed in this interpreter) |
  | `:env_key_not_found` | `make_env(from: {env, only: names})` named a variable that does not exist |
  | `:response_timeout` | no reply within the call's `:timeout`; the Python task was cancelled |
  | `:call_failed` | the interpreter stopped or crashed before replying; `reason` is its exit reason |
  | `:init_script_timeout` | the init script did not finish within `:init_script_timeout` |
  | `:interpreter_exited` | the Python process exited; `reason` is `{:exit_status, n}` (signal N gives 128+N), or `{:transport_closed, message}` / `{:protocol_error, message}` when Python was killed because its transport broke (see `Snex.Interpreter`) |
  | `:encode_error` | a value could not be sent to Python (or Python could not encode its result) |
  | `:decode_error` | a value Python sent could not be turned into a term |
  | `:internal_error` | anything else (e.g. the Python executable was not found) |
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
          | :internal_error

  @type t :: %__MODULE__{code: code(), reason: term(), traceback: [String.t()] | nil}

  defexception [:code, :reason, :traceback]

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
