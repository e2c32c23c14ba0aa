defmodule Snex.Interpreter do
  @moduledoc """
  A GenServer owning one Python OS process.

  The interpreter process starts Python (`python -m snex`), runs the init script, serves
  Python's requests to the BEAM (`snex.call`, `snex.cast`, `snex.send`), and stops Python when it
  stops. It is *not* on the path of `Snex.pyeval/4`: callers submit straight to the native
  layer, and replies go straight back to them.

  ## Example

      {:ok, interpreter} = Snex.Interpreter.start_link(init_script: "import math")
      {:ok, env} = Snex.make_env(interpreter, %{"r" => 2.0})
      {:ok, 12.57} = Snex.pyeval(env, "return round(math.pi * r * r, 2)")

      # In a supervision tree, under a name that works wherever an interpreter does:
      children = [{Snex.Interpreter, name: MyApp.Python, init_script: "import json"}]
      Supervisor.start_link(children, strategy: :one_for_one)
      {:ok, "[1, 2]"} = Snex.pyeval(MyApp.Python, "return json.dumps([1, 2])")

  Starting fails with `{:error, %Snex.Error{code: :python_not_found}}` when the Python cannot
  be run (the message says why), and with `code: :python_too_old` for a Python older than 3.10.

  ## Options

    * `:python` - the Python executable: a path, or a name looked up on `PATH`
      (default: `"python3"`, then `"python"`).
    * `:wrap_exec` - `{m, f, a}` (called as `apply(m, f, a ++ [python, args])`) or a 2-arity
      fun `(python, args) -> {executable, args}`: runs Python through a wrapper (`env`,
      `bash -c`, `docker run -i`, `ssh`). The wrapper must pass on Python's fds 3 and 4 (or use
      `:use_stdio`). `os_pid/1` is then the wrapper's pid, which is Python's only when the
      wrapper execs it. If the wrapper exits before Python has started (e.g. a missing
      command, status 127), `start_link/1` returns
      `{:error, %Snex.Error{code: :interpreter_exited, reason: {:exit_status, status}}}`.
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
    * `:port_opts` - a list of transport options (see "Transport" below):
      * `:use_stdio` - the protocol goes over Python's stdin and stdout;
      * `{:busy_limits_port, limits}` - `limits` is `{low, high}` (bytes) or `:disabled`;
        default `{4_194_304, 8_388_608}`;
      * `{:busy_limits_msgq, limits}` - the same form; default `:disabled`;
      * `{:parallelism, boolean}` - default `true`.
    * `:eager_polyfill?` - `true` (default): Python's event loop runs callbacks that become
      ready during an iteration at once instead of polling first (tasks start eagerly too on
      Python 3.12+), and code without top-level `await` runs directly, without a task. This
      saves a poll per hop (a task waking up, a reply to `snex.call`). `false`: the plain
      asyncio loop, and every request gets its own task.
    * `:max_concurrent_callbacks` - a positive integer or `:infinity` (default 1 000): how many
      of Python's `snex.call`s and `snex.cast`s (each runs in a BEAM process of its own) may
      run at once for this interpreter; see "Calls from Python" below.
    * `:capture_output` - `true`: what a request's code prints goes to the group leader of the
      process that made the request (`Snex.pyeval/4`'s `:capture_output` overrides it per
      call); default `false`: to Python's own stdout/stderr (the BEAM's, unless `:use_stdio`).

  GenServer options (`:name`, `:timeout`, `:debug`, `:spawn_opt`, `:hibernate_after`) are passed
  on; any other key raises `ArgumentError`.

  Secrets. The interpreter's crash reports and `:sys.get_status/1` show `:redacted` in place of
  the values of `:environment`, the init script's code and the values of its variables, and
  the arguments of a `{m, f, a}` `:wrap_exec` (and of the command line built with it); names
  and the other options are shown. The options you pass stay visible where you keep them: in
  a supervisor's child spec, for instance, which OTP's supervisor reports print when SASL
  reports are logged (`handle_sasl_reports`).

  ## Transport

  By default requests and replies travel over two pipes of their own (Python reads fd 3 and
  writes fd 4). Python's stdin is `/dev/null`; its stdout and stderr are the BEAM's, so `print`
  shows up where the BEAM's output goes.

  With `:use_stdio`, Python's stdin and stdout carry the protocol instead (for wrappers such as
  `docker run -i` or `ssh`, through which only stdio crosses). In Python `sys.stdin` and
  `sys.stdout` are then `None`: `print()` writes nothing, `input()` fails, and whatever is
  written to file descriptor 1 at a lower level (`os.write(1, ...)`, `sys.__stdout__`, child
  processes) goes to Python's stderr, never into the protocol. Snex sets `SNEX_USE_STDIO=1`.

  Busy limits. Each request is encoded by its caller and handed to the interpreter's writer
  thread, which writes it into the pipe as Python reads. Two byte counts can be limited, each
  with a low and a high watermark:

    * `busy_limits_port` counts every byte handed over by callers and not yet accepted by the
      pipe (queued for the writer, or being written); the pipe itself holds up to an eighth of
      `high` (at most 1 MiB, 64 KiB at least);
    * `busy_limits_msgq` counts the bytes handed over by callers that the writer thread has not
      yet taken from its queue (it takes everything queued at once, up to 64 requests, while the
      pipe accepts data; the queue grows while the writer is blocked on a full pipe).

  A caller that finds a count over `high` is suspended - it blocks in `Snex.pyeval/4` or
  `Snex.make_env/3`, it does not fail - until that count has drained to `low`; while a count is
  draining from over `high` to `low`, every new caller waits too. Its `:timeout` still runs
  while it waits (`:response_timeout`). The check is made before the request is encoded, and
  only the count already queued matters: a request larger than `high` goes through whenever
  the count is at most `high`. Both limits may be active at once; `:disabled` means no limit.
  Answers to Python's `snex.call` are never held back, and neither are cancellations and the
  freeing of environments.

  The high watermark of `busy_limits_port` is also Python's read buffer limit: Python never
  reads more than `high` bytes beyond the frame it is assembling (and at most 64 KiB per read),
  so requests it has not got to yet stay in the pipe and in Snex's queue, where the limit sees
  them, instead of piling up in Python's memory. Snex passes it to Python as
  `SNEX_READ_LIMIT`; with `:disabled`, Python reads 64 KiB at a time.

  Parallelism. With `parallelism: true` (the default) callers encode their requests and queue
  them concurrently, each on its own scheduler (a normal one, or a dirty CPU scheduler for
  large requests). With `parallelism: false` at most one caller at a time encodes and queues a
  request for this interpreter: its encodings never run in parallel, so a burst of large
  requests takes one scheduler and one encoding buffer at a time instead of one per scheduler,
  leaving the other schedulers to the rest of the node. A caller that finds another one
  submitting does not block its scheduler: it retries on a dirty I/O scheduler and waits there
  for its turn, holding that dirty I/O thread (shared with the file I/O of the whole node)
  while it waits. What Python receives and what each caller gets back are the same either way;
  when Python is the bottleneck, as it usually is, throughput is about the same (see
  `docs/decisions.md`).

  ## Calls from Python

  Each `snex.call` and `snex.cast` (and `Elixir.Mod.fun(...)` proxy call) runs in a new BEAM
  process, a task of a `Task.Supervisor` that belongs to the interpreter, so a slow callback
  holds up neither the interpreter nor the other callbacks. At most `:max_concurrent_callbacks`
  of them run at once. A `snex.call` over the limit raises `snex.ElixirError` in Python at once,
  with a message naming the limit and the option; a `snex.cast` over it is dropped and logged
  with `Logger.error/1`. The same happens when the BEAM cannot spawn a process because its
  process table is full (`+P`): the interpreter keeps running either way. `snex.send` spawns no
  process and has no limit. Callbacks still running when the interpreter stops are stopped with
  it (their results could no longer reach Python).

  ## Lifecycle

  If Python exits, the interpreter process exits with
  `%Snex.Error{code: :interpreter_exited, reason: {:exit_status, n}}` and every pending caller
  gets `{:error, %Snex.Error{code: :call_failed}}`.

  If the transport breaks while Python still runs, Python is killed with its process group and
  the interpreter process exits the same way, with one of these reasons instead, so that a
  supervisor restarts it:

    * `{:transport_closed, message}` - the pipe from Python reached end of file (Python closed
      fd 4, or replaced it with `dup2`), or writing into the pipe to Python failed (Python
      closed fd 3). Python exiting also closes its pipes, so it is given 1 s to exit: when it
      does, its `{:exit_status, n}` is reported.
    * `{:protocol_error, message}` - Python wrote something that is not a frame into the pipe
      (for example a stray frame header: the next frame is then not a frame's body). Python is
      killed at once.

  When the interpreter process stops (for any reason, `:kill` included), Python's pipe is
  closed, then it gets `SIGTERM` and `SIGKILL` if it lingers; its process group goes with it. If the BEAM dies, even killed with `SIGKILL`,
  Python's process group gets `SIGKILL`: Python and the processes it started (unless they left
  the group, e.g. with `start_new_session=True`).

  Python is started by `snex_helper`, a small program installed next to the NIF in
  `priv/native/`: it is Python's parent, leads its process group, reports its exit status and
  kills the group when the BEAM goes away (see `docs/decisions.md`).
  """
  use GenServer
  require Logger

  @doc """
  Makes the calling module a custom interpreter, optionally with its own Python dependencies.

      defmodule MyApp.NumpyInterpreter do
        use Snex.Interpreter,
          pyproject_toml: \"\"\"
          [project]
          name = "my-numpy-project"
          version = "0.0.0"
          requires-python = ">=3.10"
          dependencies = ["numpy>=2"]
          \"\"\"
      end

  Options (at most one of them):

    * `:pyproject_toml` - the text of a `pyproject.toml`.
    * `:project_path` - a directory with a `pyproject.toml` (relative paths are relative to the
      Mix project's root). Its `uv.lock` is used when present (`uv sync --locked`: a lock that
      does not match the project fails the compile); without one, uv writes it there, as
      `uv sync` does. Python runs in this directory, so the project's own modules are
      importable; the project itself is not installed into the venv.

  At compile time `uv sync` creates a virtual environment for the module under
  `_build/$MIX_ENV/snex/<Module>/.venv` with the project's dependencies, using a Python already
  on the machine (`UV_PYTHON_DOWNLOADS=never`). The compile fails with uv's message when `uv`
  is missing (it is looked up on `PATH`, or taken from `SNEX_UV`) or the sync fails. The module
  is compiled again when `pyproject.toml` or `uv.lock` changes or the venv is gone; syncing is
  skipped when neither changed. In a release, `Snex.Release.after_assemble/1` copies the venv
  into the release. Outside a Mix project (a script with `Mix.install/2`, Livebook) the venv
  goes to `snex/projects/<hash of the project>` in Mix's cache directory (`$SNEX_CACHE_DIR`
  when set), where the next run finds it.

  `start_link/1` returns `{:error, %Snex.Error{code: :python_not_found}}` (unless `:python` is
  given) when the venv is missing - not built, or not in the release because the release step
  is missing - or cannot run because the Python it was made with is not there; the message
  names the path, the Python version needed and the fix.

  The module gets `start_link/1` and `child_spec/1` (both overridable, `super/1` works),
  `os_pid/1` and `stop/1,2,3`. `start_link/1` fills in, unless given: `:python` (the venv's),
  `:cd` (the `project_path` directory), `:label` (the module) and the venv's environment
  (`VIRTUAL_ENV`, its `bin/` first on `PATH`; user-given `:environment` entries win). With no
  options, `use Snex.Interpreter` gives the same functions around the default Python.
  """
  defmacro __using__(opts) do
    quote bind_quoted: [opts: opts] do
      @snex_project Snex.Interpreter.Project.prepare!(__MODULE__, opts, __ENV__)

      @doc false
      def __snex_interpreter__, do: @snex_project

      if @snex_project do
        @doc false
        def __mix_recompile__?, do: Snex.Interpreter.Project.stale?(@snex_project)
      end

      @doc "Starts this interpreter; see `Snex.Interpreter.start_link/1` for the options."
      @spec start_link(keyword()) :: GenServer.on_start()
      def start_link(opts \\ []) do
        with {:ok, opts} <- Snex.Interpreter.Project.start_opts(@snex_project, __MODULE__, opts) do
          Snex.Interpreter.start_link(opts)
        end
      end

      @doc "A child spec starting this interpreter (`:id` defaults to the module)."
      @spec child_spec(keyword()) :: Supervisor.child_spec()
      def child_spec(opts) do
        spec = Snex.Interpreter.child_spec(Keyword.put_new(opts, :id, __MODULE__))
        {_, _, args} = spec.start
        %{spec | start: {__MODULE__, :start_link, args}}
      end

      @doc "The OS pid of the Python process."
      @spec os_pid(GenServer.server()) :: non_neg_integer()
      defdelegate os_pid(server), to: Snex.Interpreter

      @doc "Stops the interpreter and its Python process."
      @spec stop(GenServer.server(), term(), timeout()) :: :ok
      defdelegate stop(server, reason \\ :normal, timeout \\ :infinity), to: Snex.Interpreter

      defoverridable start_link: 1, child_spec: 1
    end
  end

  alias Snex.Interpreter.{Callbacks, Options, PythonLookup}
  alias Snex.Request

  # How long start-up waits for the exit report of a Python found closed: the native layer
  # sends it once Python has exited, or once it has been killed after losing its transport.
  @exit_report_timeout 10_000

  @type server :: GenServer.server()

  @doc """
  Starts an interpreter linked to the caller. See the module doc for the options.

  Returns `{:error, %Snex.Error{}}` when Python cannot be started or the init script fails
  (with `sync_start?: true`).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    {options, gen_server_opts} = Options.split!(opts)
    GenServer.start_link(__MODULE__, Options.resolve_command!(options), gen_server_opts)
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
  # interpreter process. Asks the process only while it is still starting (waiting at most
  # until `deadline`: then `:timeout`); nil if it is gone.
  @spec resource(pid(), Snex.Request.deadline()) :: reference() | nil | :timeout
  def resource(pid, deadline \\ :infinity) do
    case Snex.Registry.lookup(pid) do
      nil ->
        try do
          GenServer.call(pid, :resource, Snex.Request.remaining(deadline))
        catch
          :exit, {:timeout, _} -> :timeout
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
    {:ok, callbacks} = Callbacks.start_link(options.max_concurrent_callbacks)
    state = %{options: options, resource: nil, callbacks: callbacks}

    if options.sync_start? do
      case start_python(state) do
        {:ok, state} ->
          {:ok, state}

        {:error, error} ->
          Callbacks.stop(callbacks)
          {:stop, error}
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
    Callbacks.handle_raw(kind, id, body, state.resource, state.callbacks)
    {:noreply, state}
  end

  # Without its callback supervisor the interpreter could not answer Python's calls.
  def handle_info({:EXIT, pid, reason}, %{callbacks: %Callbacks{supervisor: pid}} = state),
    do: {:stop, {:callback_supervisor_exited, reason}, state}

  # Exits of other linked processes (the parent's is handled by GenServer).
  def handle_info({:EXIT, _pid, _reason}, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{resource: res, callbacks: callbacks}) do
    if res, do: Snex.Native.shutdown(res)
    Callbacks.stop(callbacks)
    Snex.Registry.unregister()
    :ok
  end

  # Crash reports and `:sys.get_status/1` show the options redacted (`Options.redact/1`).
  # OTP 25+ calls format_status/1 when it is exported; Elixir declares it as a GenServer
  # callback from 1.17 on, 1.14 only format_status/2 (called by older OTPs).
  if {:format_status, 1} in GenServer.behaviour_info(:callbacks), do: @impl(true)
  @doc false
  def format_status(status) when is_map(status) do
    Enum.reduce([:state, :message, :reason], status, fn key, status ->
      Map.replace_lazy(status, key, &redact/1)
    end)
  end

  @impl true
  def format_status(:normal, [_pdict, state]), do: [data: [{~c"State", redact(state)}]]
  def format_status(_reason, [_pdict, state]), do: redact(state)

  # Every options struct inside a term (the state; a reason or message holding one) redacted.
  defp redact(%Options{} = options), do: Options.redact(options)
  defp redact(map) when is_map(map), do: :maps.map(fn _key, value -> redact(value) end, map)
  defp redact(list) when is_list(list), do: redact_list(list)
  defp redact(tuple) when is_tuple(tuple), do: redact_tuple(tuple)
  defp redact(other), do: other

  # Lists may be improper.
  defp redact_list([head | tail]), do: [redact(head) | redact_list(tail)]
  defp redact_list([]), do: []
  defp redact_list(tail), do: redact(tail)

  defp redact_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&redact/1) |> List.to_tuple()

  ## Start-up

  defp start_python(%{options: options} = state) do
    with {:ok, spec} <- Options.start_spec(options),
         {:ok, res} <- native_start(spec) do
      callbacks =
        Callbacks.put_metadata(
          state.callbacks,
          self(),
          Snex.Native.os_pid(res),
          options.label
        )

      state = %{state | resource: res, callbacks: callbacks}

      case run_init_script(state) do
        :ok ->
          # Only now can callers find the resource without asking this process, so nothing
          # runs before the init script.
          Snex.Registry.register(res)
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
  rescue
    # The spec holds the environment: it must not reach a crash report through a stacktrace.
    exception ->
      message = Exception.message(exception)
      {:error, Snex.Error.new(:internal_error, "cannot start Python: #{message}")}
  end

  defp run_init_script(%{options: options, resource: res} = state) do
    {code, vars} =
      case options.init_script do
        {code, vars} -> {code, vars}
        code -> {code, %{}}
      end

    {src, file, line} =
      case code do
        nil -> {nil, "<Snex.Code>", 0}
        code -> Snex.Code.parts(code)
      end

    deadline = Request.deadline(options.init_script_timeout)

    # The tag is a plain reference: this process is the interpreter, it does not monitor
    # itself.
    request = %Request{
      kind: :eval,
      interpreter: self(),
      resource: res,
      args: [0, src, file, line, Snex.Serde.EncodingOpts.pack(options.encoding_opts), false],
      value: vars,
      deadline: deadline,
      tag: make_ref()
    }

    case Request.submit(request) do
      {:ok, id, _} ->
        await_init(state, request.tag, id, deadline)

      {:error, :closed} ->
        # Python is gone already (e.g. a wrapper that failed at once): its exit is on the way.
        receive do
          {:snex_exit, status} -> {:error, exited(status)}
        after
          @exit_report_timeout -> {:error, Snex.Error.new(:internal_error, :closed)}
        end

      {:error, %Snex.Error{code: :response_timeout}} ->
        {:error, init_timeout(options)}

      {:error, error} ->
        {:error, error}
    end
  end

  # Python's requests to the BEAM (`snex.call` in the init script) are served meanwhile.
  defp await_init(%{resource: res} = state, tag, id, deadline) do
    receive do
      {^tag, outcome, body} ->
        with {:ok, _} <- Request.to_result(outcome, body), do: :ok

      {:snex_exit, status} ->
        {:error, start_exited(state.options, status)}

      {:snex_request, kind, request_id, body} ->
        Callbacks.handle_raw(kind, request_id, body, res, state.callbacks)
        await_init(state, tag, id, deadline)
    after
      Request.remaining(deadline) ->
        Snex.Native.cancel(res, id)
        {:error, init_timeout(state.options)}
    end
  end

  defp init_timeout(options) do
    timeout = options.init_script_timeout
    Snex.Error.new(:init_script_timeout, "the init script did not finish in #{timeout} ms")
  end

  # An exit status, or why Python was killed after its transport was lost.
  defp exited(status) when is_integer(status),
    do: Snex.Error.new(:interpreter_exited, {:exit_status, status})

  defp exited({kind, message}) when kind in [:transport_closed, :protocol_error],
    do: Snex.Error.new(:interpreter_exited, {kind, message})

  # Python exited before it was ready. `python -m snex` refuses a Python that is too old with a
  # status of its own, before it reads anything.
  defp start_exited(options, status) do
    if status == PythonLookup.too_old_status(),
      do: PythonLookup.too_old_error(Options.python_name(options)),
      else: exited(status)
  end

  defp set_label(nil), do: :ok

  defp set_label(label) do
    if function_exported?(:proc_lib, :set_label, 1) do
      apply(:proc_lib, :set_label, [label])
    else
      Process.put(:"$process_label", label)
    end
  end
end
