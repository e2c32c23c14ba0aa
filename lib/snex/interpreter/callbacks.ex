defmodule Snex.Interpreter.Callbacks do
  @moduledoc false
  # Serves Python's requests to the BEAM (`snex.call`, `snex.cast`, `snex.send`). Calls and casts
  # run as tasks of the interpreter's own `Task.Supervisor`, never in the interpreter process, so
  # a slow call does not hold up the interpreter. The supervisor's `:max_children` is the
  # interpreter's `:max_concurrent_callbacks`: a call over it (or one the BEAM cannot spawn a
  # process for) is answered with an error, a cast over it is dropped and logged.
  require Logger

  alias Snex.Serde.EncodingOpts

  defstruct [:supervisor, :limit, metadata: []]

  @typedoc """
  The interpreter's callback supervisor, its bound, and the `Logger` metadata of its callbacks.
  """
  @type t :: %__MODULE__{
          supervisor: pid(),
          limit: pos_integer() | :infinity,
          metadata: keyword()
        }

  @doc """
  Starts the callback supervisor of the calling interpreter process, linked to it: when the
  interpreter stops, callbacks still running are stopped too.
  """
  @spec start_link(pos_integer() | :infinity) :: {:ok, t()} | {:error, term()}
  def start_link(limit) do
    with {:ok, supervisor} <- Task.Supervisor.start_link(max_children: limit) do
      {:ok, %__MODULE__{supervisor: supervisor, limit: limit}}
    end
  end

  @doc """
  Sets the `Logger` metadata that says which interpreter a callback serves (so Python's log
  records, which arrive as casts, carry it too): `snex_interpreter` (the interpreter's pid),
  `snex_os_pid` (Python's OS pid) and `snex_label` (the interpreter's label, when it has one).
  """
  @spec put_metadata(t(), pid(), non_neg_integer() | nil, term()) :: t()
  def put_metadata(%__MODULE__{} = callbacks, interpreter, os_pid, label) do
    metadata =
      Enum.reject(
        [snex_interpreter: interpreter, snex_os_pid: os_pid, snex_label: label],
        fn {_key, value} -> is_nil(value) end
      )

    %{callbacks | metadata: metadata}
  end

  @doc """
  Stops the callback supervisor and the callbacks still running, with reason `:shutdown`, so
  that it logs no crash report of its own when the interpreter stops for another reason.
  """
  @spec stop(t()) :: :ok
  def stop(%__MODULE__{supervisor: supervisor}) do
    Supervisor.stop(supervisor, :shutdown)
  catch
    :exit, _already_gone -> :ok
  end

  @doc "Decodes and handles one request forwarded, undecoded, by the NIF's reader thread."
  @spec handle_raw(
          :call | :cast | :send,
          non_neg_integer(),
          Snex.Serde.Decoder.body(),
          reference(),
          t()
        ) :: :ok
  def handle_raw(kind, id, body, res, callbacks) do
    decoded =
      case Snex.Serde.Decoder.decode(body) do
        {:ok, term} -> term
        {:error, message} -> {:decode_error, message}
      end

    handle(kind, id, decoded, res, callbacks)
  end

  @doc "Handles one decoded request."
  @spec handle(:call | :cast | :send, non_neg_integer(), term(), reference(), t()) :: :ok
  def handle(:call, id, {:decode_error, message}, res, _callbacks) do
    reply(res, id, false, "Snex could not decode the call: #{message}", [])
  end

  def handle(kind, _id, {:decode_error, message}, _res, _callbacks) do
    Logger.error("Snex: could not decode a #{kind} from Python: #{message}")
  end

  def handle(:call, id, {module, function, args, node, result_opts}, res, callbacks) do
    run = fn ->
      opts = result_opts(result_opts)

      case apply_somewhere(node, module, function, args) do
        {:ok, value} -> reply(res, id, true, value, opts)
        {:error, message} -> reply(res, id, false, message, [])
      end
    end

    case start(callbacks, run) do
      :ok -> :ok
      {:error, why} -> reply(res, id, false, "Snex refused the call: " <> why, [])
    end
  end

  def handle(:cast, _id, {module, function, args, node}, _res, callbacks) do
    run = fn ->
      case apply_somewhere(node, module, function, args) do
        {:ok, _} -> :ok
        {:error, message} -> Logger.error("Snex: cast from Python failed: " <> message)
      end
    end

    case start(callbacks, run) do
      :ok ->
        :ok

      {:error, why} ->
        Logger.error(
          "Snex: a cast from Python to #{inspect(module)}.#{function} was dropped: " <> why
        )
    end
  end

  def handle(:send, _id, {to, data}, _res, _callbacks) do
    try do
      send(to, data)
    rescue
      error -> Logger.error("Snex: send from Python to #{inspect(to)} failed: #{inspect(error)}")
    end

    :ok
  end

  def handle(kind, _id, body, _res, _callbacks) do
    Logger.error("Snex: malformed #{kind} request from Python: #{inspect(body, limit: 20)}")
  end

  # Starts `run` as a task of the interpreter's supervisor, or says why it could not.
  defp start(%__MODULE__{supervisor: supervisor, limit: limit, metadata: metadata}, run) do
    task = fn ->
      Logger.metadata(metadata)
      run.()
    end

    case Task.Supervisor.start_child(supervisor, task, shutdown: :brutal_kill) do
      {:ok, _pid} ->
        :ok

      {:error, :max_children} ->
        {:error,
         "#{limit} callbacks (snex.call/snex.cast) of this interpreter are already running, " <>
           "the limit set by the :max_concurrent_callbacks option of " <>
           "Snex.Interpreter.start_link/1"}

      {:error, {:system_limit, _stacktrace}} ->
        {:error, "the BEAM cannot spawn a process for it: its process table is full"}

      {:error, reason} ->
        {:error, "no process could be started for it: #{inspect(reason, limit: 10)}"}
    end
  catch
    :exit, reason ->
      {:error, "the interpreter's callback supervisor is gone: #{inspect(reason, limit: 10)}"}
  end

  defp apply_somewhere(node, module, function, args)
       when is_atom(module) and is_atom(function) and is_list(args) do
    try do
      if node in [nil, node()] do
        {:ok, apply(module, function, args)}
      else
        {:ok, :erpc.call(node, module, function, args)}
      end
    catch
      kind, reason -> {:error, Exception.format(kind, reason, __STACKTRACE__)}
    end
  end

  defp apply_somewhere(_node, module, function, args),
    do:
      {:error,
       "bad call: module and function must be atoms and args a list, got: " <>
         inspect({module, function, args})}

  # The interpreter's own encoding options are applied by the NIF; these override them.
  defp result_opts(nil), do: []

  defp result_opts(extra) when is_map(extra) or is_list(extra) do
    EncodingOpts.validate!(Enum.to_list(extra))
  rescue
    _ -> []
  end

  defp result_opts(_), do: []

  defp reply(res, id, ok, value, opts) do
    request = %Snex.Request{
      kind: :call_result,
      interpreter: self(),
      resource: res,
      args: [id, ok, EncodingOpts.pack(opts)],
      value: value,
      deadline: :infinity
    }

    case Snex.Request.submit(request) do
      {:error, %Snex.Error{code: :encode_error, reason: message}} ->
        reply(res, id, false, "Snex could not encode the call result: #{message}", [])

      _ ->
        :ok
    end
  end
end
