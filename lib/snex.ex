defmodule Snex do
  @moduledoc """
  Run Python code from Elixir, in Python interpreters that live in separate OS processes.

      {:ok, interpreter} = Snex.Interpreter.start_link()
      {:ok, env} = Snex.make_env(interpreter, %{"x" => 20})
      {:ok, 42} = Snex.pyeval(env, "return x * 2 + 2")

  See `Snex.Interpreter` for starting interpreters, `Snex.Env` for environments, and
  `Snex.Serde` for how values cross between Elixir and Python.

  An interpreter is a pid or a name (an atom, `{name, node}`, `{:global, name}`,
  `{:via, module, name}`). A name registered to no process (for instance while a supervisor
  restarts the interpreter), a dead pid or an unreachable node gives
  `{:error, %Snex.Error{code: :call_failed}}`; a term that is none of these raises
  `ArgumentError`.
  """

  alias Snex.{Env, Error, Request, Returning, Target}
  alias Snex.Serde.EncodingOpts

  @type interpreter :: GenServer.server()
  @type vars :: %{optional(String.t()) => term()}
  @type code :: String.t() | Snex.Code.t() | nil
  @type from_spec ::
          Env.t() | {Env.t(), only: [String.t()]} | {Env.t(), except: [String.t()]}

  @doc """
  Makes a new environment in `interpreter`: a shallow copy of its root environment (what the
  init script left), then the variables of the `:from` environments, then `vars`.

  Forms: `make_env(interpreter)`, `make_env(interpreter, vars)`, `make_env(interpreter, opts)`,
  `make_env(interpreter, vars, opts)`, and `make_env(opts)` / `make_env(vars, opts)` with the
  interpreter taken from `:from`.

  Options:
    * `:from` - `env`, `{env, only: names}`, `{env, except: names}`, or a list of those; copied
      in order, later ones overriding earlier ones. All must live in the same interpreter.
    * `:encoding_opts` - for `vars` (see `Snex.Serde`).
    * `:timeout` - default `:infinity`.
  """
  @spec make_env(interpreter() | keyword() | vars(), vars() | keyword(), keyword()) ::
          {:ok, Env.t()} | {:error, Error.t()}
  def make_env(interpreter_or_opts, vars_or_opts \\ %{}, opts \\ [])

  def make_env(opts, %{} = none, []) when is_list(opts) and map_size(none) == 0,
    do: make_env_from(%{}, opts)

  def make_env(vars, opts, []) when is_map(vars) and not is_struct(vars) and is_list(opts),
    do: make_env_from(vars, opts)

  def make_env(interpreter, opts, []) when is_list(opts), do: make_env(interpreter, %{}, opts)

  def make_env(interpreter, vars, opts) when is_map(vars) and is_list(opts) do
    check_vars!(vars)
    encoding = EncodingOpts.packed!(opts)
    timeout = Keyword.get(opts, :timeout, :infinity)
    remote_args = fn interpreter -> [interpreter, vars, opts] end

    local = fn pid, res, _env_id, deadline ->
      sources = from_sources!(Keyword.get(opts, :from, []), pid)

      request = %Request{
        kind: :make_env,
        interpreter: pid,
        resource: res,
        args: [sources, encoding],
        value: vars,
        deadline: deadline
      }

      with {:ok, {ref, id}} <- Request.run(request),
           do: {:ok, %Env{id: id, ref: ref, interpreter: pid}}
    end

    # An env is no interpreter here (Target.interpreter/2 raises); a pool gives a member of
    # this node, where the env will live.
    __dispatch__(
      interpreter,
      timeout,
      :__make_remote_env__,
      remote_args,
      local,
      &Target.interpreter/2
    )
  end

  @doc false
  # make_env asked from another node: the env's references are counted on this (its home) node,
  # where the asker holds none, so garbage collection is disabled: free it with destroy_env/1.
  def __make_remote_env__(interpreter, vars, opts) do
    with {:ok, env} <- make_env(interpreter, vars, opts), do: {:ok, Env.disable_gc(env)}
  end

  defp make_env_from(vars, opts) do
    case List.wrap(Keyword.get(opts, :from)) do
      [first | _] -> make_env(Env.interpreter(source_env(first)), vars, opts)
      [] -> raise ArgumentError, "make_env/1,2 without an interpreter needs the :from option"
    end
  end

  @doc """
  Frees `env` in Python now. Idempotent, works from any node, and is harmless when the
  interpreter is gone; later use of `env` gives `{:error, %Snex.Error{code: :env_not_found}}`.
  """
  @spec destroy_env(Env.t()) :: :ok
  def destroy_env(%Env{id: id} = env) do
    case Target.resolve(env) do
      {:local, _pid, target, _} -> Snex.Native.destroy_env(target, id)
      {:remote, node} -> remote(node, :destroy_env, [env], :infinity)
      :gone -> :ok
    end

    :ok
  catch
    :exit, _ -> :ok
  end

  @doc """
  Runs Python `code` in `env` (or in a throw-away copy of the root environment of an
  interpreter) and returns what it `return`s (`nil` without `return`).

  `vars` are set in the environment before the code runs, and stay there. The code may use
  `await` and `return` at the top level.

  Every shorter form works: `pyeval(x)`, `pyeval(x, code)`, `pyeval(x, code, vars)`,
  `pyeval(x, code, opts)`, `pyeval(x, vars)`, `pyeval(x, vars, opts)`, `pyeval(x, opts)`.

  Options:
    * `:timeout` - milliseconds or `:infinity` (default 5 000). On timeout the request is
      cancelled in Python (see `Snex.Error`, "What a timeout does in Python").
    * `:encoding_opts` - for `vars` (see `Snex.Serde`).
    * `:capture_output` - `true`: what the code prints (`sys.stdout`, `sys.stderr`, from the
      code and the tasks it starts; not from threads it starts) goes to the calling process's
      group leader, as Livebook users expect; `false`: to the interpreter's streams. Default:
      the interpreter's `:capture_output`.
    * `:returning` - deprecated (Snex 0.4): a Python expression, or a list of them, evaluated
      after the code; the result is its value (a list of values for a list). Warns on use;
      end the code with `return` instead.

  Other options, and code that is not a string, a `Snex.Code` or `nil` (a charlist, say),
  raise `ArgumentError`.
  """
  @spec pyeval(
          Env.t() | interpreter(),
          code() | vars() | keyword(),
          vars() | keyword(),
          keyword()
        ) ::
          {:ok, term()} | {:error, Error.t()}
  def pyeval(target, code \\ nil, vars \\ %{}, opts \\ [])

  def pyeval(target, opts, %{} = vars, []) when is_list(opts) and map_size(vars) == 0 do
    check_opts_not_code!(opts)
    pyeval(target, nil, %{}, opts)
  end

  def pyeval(target, vars, opts, []) when is_map(vars) and not is_struct(vars) and is_list(opts),
    do: pyeval(target, nil, vars, opts)

  def pyeval(target, vars, %{} = none, [])
      when is_map(vars) and not is_struct(vars) and map_size(none) == 0,
      do: pyeval(target, nil, vars, [])

  def pyeval(target, code, opts, []) when is_list(opts), do: pyeval(target, code, %{}, opts)

  def pyeval(target, code, vars, opts) when is_map(vars) and is_list(opts) do
    check_vars!(vars)
    check_pyeval_opts!(opts)
    {src, file, line} = code_parts!(code)
    src = Returning.append(src, Keyword.get(opts, :returning))
    timeout = Keyword.get(opts, :timeout, Request.default_timeout())
    encoding = EncodingOpts.packed!(opts)
    capture = capture_output!(opts)

    # On another node the code already holds the `:returning` expressions.
    remote_args = fn target ->
      code = if src, do: %Snex.Code{src: src, file: file, line: line}
      [target, code, vars, Keyword.delete(opts, :returning)]
    end

    __dispatch__(target, timeout, :pyeval, remote_args, fn pid, nif_target, env_id, deadline ->
      Request.run(%Request{
        kind: :eval,
        interpreter: pid,
        resource: nif_target,
        args: [env_id, src, file, line, encoding, capture],
        value: vars,
        deadline: deadline
      })
    end)
  end

  def pyeval(_target, code, vars, opts),
    do:
      raise(
        ArgumentError,
        "bad arguments to Snex.pyeval: code=#{inspect(code)}, vars=#{inspect(vars)}, opts=#{inspect(opts)}"
      )

  @doc """
  A lazy `Stream` over what `code` returns: a generator, an async generator, or any (async)
  iterable.

      Snex.stream(interpreter, "return (i * i for i in range(10**9))") |> Enum.take(3)
      #=> [0, 1, 4]

  The code runs in an environment of the stream's own: a copy of `env` (or of the root
  environment of an interpreter), with `vars` set. Items are produced on demand, `:batch_size`
  at a time (default 1 000; one request per batch), so Python never runs more than one batch
  ahead of the consumer. Halting the stream early (`Enum.take/2`, an exception in the
  consumer) closes the generator in Python (its `finally` runs, `aclose()` for async
  generators); so does the consuming process dying. An exception raised by the generator
  raises `Snex.Error` in the consumer, after the items produced before it.

  Options: `:batch_size`, `:timeout` (per batch, default 5 000 ms), `:encoding_opts`.
  """
  @spec stream(interpreter() | Env.t(), code(), vars(), keyword()) :: Enumerable.t()
  def stream(target, code, vars \\ %{}, opts \\ []) do
    check_vars!(vars)
    Snex.Stream.stream(target, code, vars, opts)
  end

  @doc """
  Calls the Python function `function` of module `module` (a dotted module path, imported once
  per interpreter) with `args`, awaiting it if it returns an awaitable.

      {:ok, 3.0} = Snex.call(interpreter, "math", "sqrt", [9])
      {:ok, "a-b"} = Snex.call(interpreter, "operator", "concat", ["a-", "b"])
      {:ok, 8} = Snex.call(interpreter, "builtins", "pow", [2, 3])

  Options: `:kwargs` (a map or keyword list of keyword arguments), `:timeout`,
  `:encoding_opts`; errors as `pyeval/4`. On an env, the env is left as it was.
  """
  @spec call(interpreter() | Env.t(), String.t(), String.t(), list(), keyword()) ::
          {:ok, term()} | {:error, Error.t()}
  def call(target, module, function, args \\ [], opts \\ []),
    do: Snex.DirectCall.call(target, module, function, args, opts)

  @doc """
  Like `pyeval/4`, but returns the value itself and raises the `Snex.Error` of a failure.
  """
  @spec pyeval!(
          Env.t() | interpreter(),
          code() | vars() | keyword(),
          vars() | keyword(),
          keyword()
        ) :: term()
  def pyeval!(target, code \\ nil, vars \\ %{}, opts \\ []) do
    case pyeval(target, code, vars, opts) do
      {:ok, value} -> value
      {:error, %Error{} = error} -> raise error
    end
  end

  @doc """
  Like `make_env/3`, but returns the env itself and raises the `Snex.Error` of a failure.
  """
  @spec make_env!(interpreter() | keyword() | vars(), vars() | keyword(), keyword()) :: Env.t()
  def make_env!(interpreter_or_opts, vars_or_opts \\ %{}, opts \\ []) do
    case make_env(interpreter_or_opts, vars_or_opts, opts) do
      {:ok, env} -> env
      {:error, %Error{} = error} -> raise error
    end
  end

  ## Helpers

  @pyeval_opts [:timeout, :encoding_opts, :returning, :capture_output]

  # A list where the code goes is taken for options only when it is a keyword list: a charlist
  # (or any other list) is a mistaken code argument.
  defp check_opts_not_code!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError,
            "code must be a string, a Snex.Code or nil, got: #{inspect(opts)}" <>
              if(opts != [] and List.ascii_printable?(opts),
                do: " (a charlist: use a string)",
                else: ""
              )
    end
  end

  defp capture_output!(opts) do
    case Keyword.get(opts, :capture_output) do
      capture when is_boolean(capture) or capture == nil -> capture
      other -> raise ArgumentError, ":capture_output must be a boolean, got: #{inspect(other)}"
    end
  end

  defp check_pyeval_opts!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError, "Snex.pyeval options must be a keyword list, got: #{inspect(opts)}"
    end

    case Keyword.keys(opts) -- @pyeval_opts do
      [] ->
        :ok

      unknown ->
        raise ArgumentError,
              "unknown option(s) #{inspect(unknown)} for Snex.pyeval; " <>
                "known options: #{inspect(@pyeval_opts)}"
    end
  end

  defp code_parts!(nil), do: {nil, "<Snex.Code>", 0}

  defp code_parts!(code) when is_binary(code) or is_struct(code, Snex.Code),
    do: Snex.Code.parts(code)

  defp code_parts!(other),
    do: raise(ArgumentError, "code must be a string, a Snex.Code or nil, got: #{inspect(other)}")

  defp check_vars!(vars) do
    Enum.each(vars, fn
      {key, _} when is_binary(key) -> :ok
      {key, _} -> raise ArgumentError, "variable names must be strings, got: #{inspect(key)}"
    end)
  end

  defp gone, do: {:error, Error.new(:call_failed, :noproc)}

  defp starting,
    do: {:error, Error.new(:response_timeout, "the interpreter was still starting")}

  @doc false
  # Runs a request on `target` (an env, an interpreter or a pool) with a deadline computed now:
  # `local.(pid, nif_target, env_id, deadline)` for an interpreter on this node; elsewhere
  # `Snex.fun(remote_args.(target)...)` on the target's node. `resolve` finds where the target
  # is (`Snex.Target.resolve/2` by default).
  def __dispatch__(target, timeout, fun, remote_args, local, resolve \\ &Target.resolve/2) do
    deadline = Request.deadline(timeout)

    case resolve.(target, deadline) do
      {:local, pid, nif_target, env_id} -> local.(pid, nif_target, env_id, deadline)
      {:remote, node} -> remote(node, fun, remote_args.(target), timeout)
      {:remote, node, target} -> remote(node, fun, remote_args.(target), timeout)
      :gone -> gone()
      :timeout -> starting()
    end
  end

  # Runs the call on the interpreter's node; a node that goes away is :call_failed.
  defp remote(node, fun, args, timeout) do
    erpc_timeout = if timeout == :infinity, do: :infinity, else: timeout + 1_000
    :erpc.call(node, __MODULE__, fun, args, erpc_timeout)
  catch
    :error, {:erpc, :timeout} -> {:error, Error.new(:response_timeout, "no reply from #{node}")}
    :error, {:erpc, reason} -> {:error, Error.new(:call_failed, {:nodedown, node, reason})}
    kind, reason -> {:error, Error.new(:call_failed, {kind, reason})}
  end

  defp source_env(%Env{} = env), do: env
  defp source_env({%Env{} = env, _}), do: env
  defp source_env(other), do: raise(ArgumentError, "invalid :from entry: #{inspect(other)}")

  defp from_sources!(from, pid) do
    from
    |> List.wrap()
    |> Enum.map(fn spec ->
      env = source_env(spec)

      if env.interpreter != pid do
        raise ArgumentError, "make_env :from environments must live in the same interpreter"
      end

      case spec do
        %Env{id: id} -> {id, 0, []}
        {%Env{id: id}, opts} -> source_mode!(id, opts)
      end
    end)
  end

  defp source_mode!(ref, opts) do
    case {Keyword.fetch(opts, :only), Keyword.fetch(opts, :except)} do
      {{:ok, _}, {:ok, _}} -> raise ArgumentError, ":only and :except cannot be used together"
      {{:ok, names}, :error} -> {ref, 1, names!(names)}
      {:error, {:ok, names}} -> {ref, 2, names!(names)}
      _ -> raise ArgumentError, "invalid :from options: #{inspect(opts)}"
    end
  end

  defp names!(names) do
    if is_list(names) and Enum.all?(names, &is_binary/1),
      do: names,
      else: raise(ArgumentError, "variable names must be a list of strings: #{inspect(names)}")
  end
end
