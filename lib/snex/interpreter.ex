defmodule Snex.Interpreter do
  @moduledoc """
  A GenServer owning one Python OS process.

  The interpreter process starts Python (`python -m snex`), runs the init script, serves
  Python's requests to the BEAM (`snex.call`, `snex.cast`, `snex.send`), and stops Python when it
  stops. It is *not* on the path of `Snex.pyeval/4`: callers submit straight to the native
  layer, and replies go straight back to them.

  ## Options

    * `:python` - the Python executable: a path, or a name looked up on `PATH`
      (default: `"python3"`, then `"python"`).
    * `:wrap_exec` - `{m, f, a}` (called as `apply(m, f, a ++ [python, args])`) or a 2-arity
      fun `(python, args) -> {executable, args}`: runs Python through a wrapper.
    * `:cd` - working directory of the Python process.
    * `:environment` - extra OS environment variables (string keys and values). `PYTHONPATH` is
      extended with the `snex` package, never replaced. `PYTHONUNBUFFERED=1` is set unless given.
    * `:init_script` - code (a string or `Snex.Code`), or `{code, %{"name" => value}}`: the
      variables are set in the root environment, then the code runs there. Every environment
      starts as a copy of the root environment.
    * `:init_script_timeout` - milliseconds or `:infinity` (default 60 000).
    * `:sync_start?` - `true` (default): start Python and run the init script in `init/1`, so
      `start_link/1` returns the error; `false`: do it after `start_link/1` returns, and crash
      the process on failure.
    * `:label` - a process label (`:proc_lib.set_label/1` on OTP 27+, else stored under the
      same process dictionary key).
    * `:encoding_opts` - default encoding options of this interpreter (see `Snex.Serde`).
    * `:port_opts` - transport options: `:use_stdio` (Python's stdin/stdout carry the protocol;
      `sys.stdin` and `sys.stdout` are `None` in Python), `{:busy_limits_port, {low, high} |
      :disabled}` (default `{4_194_304, 8_388_608}`: callers that find more than `high` bytes
      queued towards Python wait until it drains below `low`). `{:parallelism, boolean}` and
      `{:busy_limits_msgq, ...}` are validated and accepted; callers always encode and submit
      concurrently on their own schedulers, and there is no separate request queue to limit.
    * `:eager_polyfill?` - run code without top-level `await` directly, without creating an
      asyncio task (default `true`); `false` gives every request a task.

  GenServer options (`:name`, `:timeout`, `:debug`, `:spawn_opt`, `:hibernate_after`) are passed
  on; any other key raises `ArgumentError`.

  Python's standard streams: stdin is `/dev/null`; stdout and stderr are the BEAM's, so `print`
  shows up where the BEAM's output goes.

  ## Lifecycle

  If Python exits, the interpreter process exits with
  `%Snex.Error{code: :interpreter_exited, reason: {:exit_status, n}}` and every pending caller
  gets `{:error, %Snex.Error{code: :call_failed}}`. When the interpreter process stops (for any
  reason, `:kill` included), Python's pipe is closed, then it gets `SIGTERM` and `SIGKILL` if it
  lingers; its process group goes with it. If the BEAM dies, Python gets `SIGKILL`.
  """
  use GenServer
  require Logger

  alias Snex.Interpreter.Options

  @type server :: GenServer.server()

  @doc """
  Starts an interpreter linked to the caller. See the module doc for the options.

  Returns `{:error, %Snex.Error{}}` when Python cannot be started or the init script fails
  (with `sync_start?: true`).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    {options, gen_server_opts} = Options.split!(opts)
    GenServer.start_link(__MODULE__, options, gen_server_opts)
  end

  @doc """
  A child spec for supervisors. `:id` and `:restart` may be given among the options (defaults:
  `Snex.Interpreter` and `:permanent`).
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    {id, opts} = Keyword.pop(opts, :id, __MODULE__)
    {restart, opts} = Keyword.pop(opts, :restart, :permanent)
    %{id: id, start: {__MODULE__, :start_link, [opts]}, restart: restart, type: :worker}
  end

  @doc "The OS pid of the Python process (of the wrapper, with `:wrap_exec`)."
  @spec os_pid(server()) :: non_neg_integer()
  def os_pid(server), do: GenServer.call(server, :os_pid)

  @doc "Stops the interpreter and its Python process."
  @spec stop(server(), term(), timeout()) :: :ok
  def stop(server, reason \\ :normal, timeout \\ :infinity),
    do: GenServer.stop(server, reason, timeout)

  @doc false
  # The NIF resource of a local interpreter, for submitting requests without going through the
  # interpreter process. Asks the process only while it is still starting; nil if it is gone.
  @spec resource(pid()) :: reference() | nil
  def resource(pid) do
    case Snex.Registry.lookup(pid) do
      nil ->
        try do
          GenServer.call(pid, :resource, :infinity)
        catch
          :exit, _ -> nil
        end

      res ->
        res
    end
  end

  ## GenServer

  @impl true
  def init(%Options{} = options) do
    Process.flag(:trap_exit, true)
    set_label(options.label)
    state = %{options: options, resource: nil}

    if options.sync_start? do
      case start_python(state) do
        {:ok, state} -> {:ok, state}
        {:error, error} -> {:stop, error}
      end
    else
      {:ok, state, {:continue, :start}}
    end
  end

  @impl true
  def handle_continue(:start, state) do
    case start_python(state) do
      {:ok, state} -> {:noreply, state}
      {:error, error} -> {:stop, error, state}
    end
  end

  @impl true
  def handle_call(:os_pid, _from, %{resource: res} = state),
    do: {:reply, Snex.Native.os_pid(res), state}

  def handle_call(:resource, _from, %{resource: res} = state), do: {:reply, res, state}

  @impl true
  def handle_info({:snex_exit, status}, state) do
    {:stop, exited(status), %{state | resource: nil}}
  end

  def handle_info({:snex_request, kind, id, body}, state) do
    Snex.Interpreter.Callbacks.handle(kind, id, body, state.resource, state.options)
    {:noreply, state}
  end

  def handle_info({:snex_protocol_error, message}, state) do
    Logger.error("Snex: Python broke the protocol and is stopped: #{message}")
    {:noreply, state}
  end

  # Exits of linked processes other than the parent (the parent's is handled by GenServer).
  def handle_info({:EXIT, _pid, _reason}, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{resource: res}) do
    if res, do: Snex.Native.shutdown(res)
    Snex.Registry.unregister()
    :ok
  end

  ## Start-up

  defp start_python(%{options: options} = state) do
    with {:ok, spec} <- Options.start_spec(options),
         {:ok, res} <- native_start(spec) do
      Snex.Registry.register(res)
      state = %{state | resource: res}

      case run_init_script(state) do
        :ok ->
          {:ok, state}

        {:error, error} ->
          Snex.Native.shutdown(res)
          {:error, error}
      end
    end
  end

  defp native_start(spec) do
    case Snex.Native.start(spec) do
      {:ok, res} ->
        {:ok, res}

      {:error, message} ->
        {:error, Snex.Error.new(:internal_error, "cannot start Python: #{message}")}
    end
  end

  defp run_init_script(%{options: options, resource: res}) do
    {code, vars} =
      case options.init_script do
        {code, vars} -> {code, vars}
        code -> {code, %{}}
      end

    code = if code, do: Snex.Code.wrap(code)
    tag = make_ref()
    opts = Snex.Serde.EncodingOpts.pack(options.encoding_opts)

    case submit_root(res, tag, code, vars, opts) do
      {:ok, id} -> await_init(res, tag, id, options.init_script_timeout)
      {:error, {:encode_error, message}} -> {:error, Snex.Error.new(:encode_error, message)}
      {:error, reason} -> {:error, Snex.Error.new(:internal_error, reason)}
    end
  end

  defp submit_root(res, tag, code, vars, opts) do
    {src, file, line} =
      case code do
        nil -> {nil, "<Snex.Code>", 0}
        %Snex.Code{src: src, file: file, line: line} -> {IO.iodata_to_binary(src), file, line}
      end

    args = fn transform, extra ->
      [res, 0, tag, src, file, line, transform.(vars), opts + extra]
    end

    case Snex.Request.invoke_all(:eval, args) do
      :busy ->
        # The writer sends this once the queue has drained or the interpreter has stopped.
        receive do
          :snex_writable -> submit_root(res, tag, code, vars, opts)
        end

      other ->
        other
    end
  end

  defp await_init(res, tag, id, timeout) do
    receive do
      {^tag, {:ok, _}} ->
        :ok

      {^tag, {:error, {code, reason, traceback}}} ->
        {:error, Snex.Error.new(code, reason, traceback)}

      {:snex_exit, status} ->
        {:error, exited(status)}
    after
      timeout ->
        Snex.Native.cancel(res, id)

        {:error,
         Snex.Error.new(:init_script_timeout, "the init script did not finish in #{timeout} ms")}
    end
  end

  defp exited(status), do: Snex.Error.new(:interpreter_exited, {:exit_status, status})

  defp set_label(nil), do: :ok

  defp set_label(label) do
    if function_exported?(:proc_lib, :set_label, 1) do
      apply(:proc_lib, :set_label, [label])
    else
      Process.put(:"$process_label", label)
    end
  end
end
