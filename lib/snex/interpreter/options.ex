defmodule Snex.Interpreter.Options do
  @moduledoc false
  # Validation of `Snex.Interpreter.start_link/1` options and the command line / environment
  # of the Python process built from them.

  alias Snex.Interpreter.PythonLookup

  @snex_keys [
    :python,
    :wrap_exec,
    :cd,
    :environment,
    :init_script,
    :init_script_timeout,
    :sync_start?,
    :label,
    :encoding_opts,
    :port_opts,
    :eager_polyfill?,
    :max_concurrent_callbacks,
    :capture_output
  ]
  @gen_server_keys [:name, :timeout, :debug, :spawn_opt, :hibernate_after]

  @default_busy_limits_port {4_194_304, 8_388_608}
  @default_busy_limits_msgq :disabled

  defstruct python: nil,
            wrap_exec: nil,
            cd: nil,
            environment: %{},
            init_script: nil,
            init_script_timeout: 60_000,
            sync_start?: true,
            label: nil,
            encoding_opts: [],
            port_opts: [],
            eager_polyfill?: true,
            max_concurrent_callbacks: 1_000,
            capture_output: false,
            # Not an option: the command line, resolved by `resolve_command!/1`.
            command: nil

  @type t :: %__MODULE__{}

  @doc "Splits options into Snex's (validated) and GenServer's; raises on unknown keys."
  @spec split!(keyword()) :: {t(), keyword()}
  def split!(opts) when is_list(opts) do
    {snex, rest} = Keyword.split(opts, @snex_keys)
    {gen_server, unknown} = Keyword.split(rest, @gen_server_keys)

    if unknown != [] do
      raise ArgumentError,
            "unknown options for Snex.Interpreter: #{inspect(Keyword.keys(unknown))}; " <>
              "known: #{inspect(@snex_keys ++ @gen_server_keys)}"
    end

    {struct!(__MODULE__, snex) |> validate!(), gen_server}
  end

  def split!(other),
    do: raise(ArgumentError, "Snex.Interpreter options must be a keyword list: #{inspect(other)}")

  defp validate!(%__MODULE__{} = o) do
    check!(o.python == nil or is_binary(o.python), :python, "a string")
    check!(o.cd == nil or is_binary(o.cd), :cd, "a string")

    check!(
      is_map(o.environment) and
        Enum.all?(o.environment, fn {k, v} -> is_binary(k) and is_binary(v) end),
      :environment,
      "a map of string keys to string values"
    )

    check!(
      o.init_script_timeout == :infinity or
        (is_integer(o.init_script_timeout) and o.init_script_timeout >= 0),
      :init_script_timeout,
      "a non-negative integer or :infinity"
    )

    check!(is_boolean(o.sync_start?), :sync_start?, "a boolean")
    check!(is_boolean(o.eager_polyfill?), :eager_polyfill?, "a boolean")
    check!(is_boolean(o.capture_output), :capture_output, "a boolean")

    check!(
      o.max_concurrent_callbacks == :infinity or
        (is_integer(o.max_concurrent_callbacks) and o.max_concurrent_callbacks > 0),
      :max_concurrent_callbacks,
      "a positive integer or :infinity"
    )

    check!(valid_init_script?(o.init_script), :init_script, "code or {code, %{name => value}}")
    check!(valid_wrap_exec?(o.wrap_exec), :wrap_exec, "{module, function, args} or a 2-arity fun")
    Snex.Serde.EncodingOpts.validate!(o.encoding_opts)
    validate_port_opts!(o.port_opts)
    o
  end

  defp valid_init_script?(nil), do: true
  defp valid_init_script?(%Snex.Code{}), do: true
  defp valid_init_script?(code) when is_binary(code), do: true

  defp valid_init_script?({code, vars}) when is_map(vars),
    do: valid_init_script?(code) and Enum.all?(Map.keys(vars), &is_binary/1)

  defp valid_init_script?(_), do: false

  defp valid_wrap_exec?(nil), do: true
  defp valid_wrap_exec?({m, f, a}) when is_atom(m) and is_atom(f) and is_list(a), do: true
  defp valid_wrap_exec?(fun) when is_function(fun, 2), do: true
  defp valid_wrap_exec?(_), do: false

  defp validate_port_opts!(opts) when is_list(opts) do
    Enum.each(opts, fn
      :use_stdio ->
        :ok

      {:parallelism, b} when is_boolean(b) ->
        :ok

      {key, limits} when key in [:busy_limits_port, :busy_limits_msgq] ->
        check_limits!(key, limits)

      other ->
        raise ArgumentError, "invalid port option: #{inspect(other)}"
    end)
  end

  defp validate_port_opts!(other),
    do: raise(ArgumentError, "port_opts must be a list, got: #{inspect(other)}")

  defp check_limits!(_key, :disabled), do: :ok

  defp check_limits!(_key, {low, high})
       when is_integer(low) and is_integer(high) and low >= 0 and high >= low,
       do: :ok

  defp check_limits!(key, other),
    do:
      raise(ArgumentError, "invalid #{key}: #{inspect(other)}; expected {low, high} or :disabled")

  defp check!(true, _key, _expected), do: :ok

  defp check!(false, key, expected),
    do: raise(ArgumentError, "option #{inspect(key)} must be #{expected}")

  @doc """
  The options with everything that may hold a secret replaced by `:redacted`, for crash reports
  and `:sys.get_status/1`: the values of `:environment` (the names stay), the init script's code
  and the values of its variables (the names stay), the arguments of a `{m, f, a}` `:wrap_exec`
  and of the command line built from it (the executable stays).
  """
  @spec redact(t()) :: t()
  def redact(%__MODULE__{} = o) do
    %{
      o
      | environment: redact_values(o.environment),
        init_script: redact_init_script(o.init_script),
        wrap_exec: redact_wrap_exec(o.wrap_exec),
        command: redact_command(o.command)
    }
  end

  defp redact_values(map) when is_map(map), do: Map.new(map, fn {k, _} -> {k, :redacted} end)
  defp redact_values(_other), do: :redacted

  defp redact_init_script(nil), do: nil
  defp redact_init_script({_code, vars}), do: {:redacted, redact_values(vars)}
  defp redact_init_script(_code), do: :redacted

  defp redact_wrap_exec({m, f, a}) when is_list(a), do: {m, f, Enum.map(a, fn _ -> :redacted end)}
  defp redact_wrap_exec(other), do: other

  defp redact_command({:ok, {program, args}}) when is_list(args),
    do: {:ok, {program, Enum.map(args, fn _ -> :redacted end)}}

  defp redact_command(other), do: other

  @doc """
  The busy limits `{low, high}` of the bytes queued towards Python and not yet accepted by the
  pipe, or nil when disabled.
  """
  @spec busy_limits_port(t()) :: {non_neg_integer(), non_neg_integer()} | nil
  def busy_limits_port(%__MODULE__{} = o),
    do: limits(port_opt(o, :busy_limits_port, @default_busy_limits_port))

  @doc """
  The busy limits `{low, high}` of the bytes handed to the writer and not yet taken by it, or nil
  when disabled.
  """
  @spec busy_limits_msgq(t()) :: {non_neg_integer(), non_neg_integer()} | nil
  def busy_limits_msgq(%__MODULE__{} = o),
    do: limits(port_opt(o, :busy_limits_msgq, @default_busy_limits_msgq))

  @doc "Whether callers may submit to the interpreter concurrently."
  @spec parallelism?(t()) :: boolean()
  def parallelism?(%__MODULE__{} = o), do: port_opt(o, :parallelism, true)

  defp limits(:disabled), do: nil
  defp limits({_low, _high} = limits), do: limits

  defp port_opt(%__MODULE__{port_opts: port_opts}, key, default),
    do: port_opts |> Enum.filter(&is_tuple/1) |> Keyword.get(key, default)

  @doc "Whether Python's stdin/stdout carry the protocol."
  @spec use_stdio?(t()) :: boolean()
  def use_stdio?(%__MODULE__{port_opts: port_opts}), do: :use_stdio in port_opts

  @doc """
  Resolves the command line (the Python executable, through `:wrap_exec`) in the calling
  process, so that a `:wrap_exec` returning something else than `{executable, args}` raises
  `ArgumentError` in the caller of `start_link/1`. A Python that cannot be found is kept as the
  error that starting returns.
  """
  @spec resolve_command!(t()) :: t()
  def resolve_command!(%__MODULE__{} = o) do
    command =
      with {:ok, python} <- python(o), do: {:ok, wrap(o.wrap_exec, python, ["-m", "snex"])}

    %{o | command: command}
  end

  @doc """
  The Python that the command runs, for messages: its resolved path, or (through `:wrap_exec`)
  the name given to the wrapper.
  """
  @spec python_name(t()) :: String.t()
  def python_name(%__MODULE__{wrap_exec: nil, command: {:ok, {program, _args}}}), do: program
  def python_name(%__MODULE__{python: python}), do: python || "python3"

  @doc """
  The `Snex.Native.start/1` spec: the process helper, program, args, environment, cd and the
  transport settings.
  """
  @spec start_spec(t()) :: {:ok, map()} | {:error, Snex.Error.t()}
  def start_spec(%__MODULE__{} = o) do
    with {:ok, {program, args}} <- o.command || resolve_command!(o).command do
      {:ok,
       %{
         helper: helper_path(),
         program: program,
         args: args,
         env: Map.to_list(environment(o)),
         cd: o.cd,
         use_stdio: use_stdio?(o),
         busy_limits_port: busy_limits_port(o),
         busy_limits_msgq: busy_limits_msgq(o),
         parallelism: parallelism?(o),
         encoding_opts: Snex.Serde.EncodingOpts.pack(o.encoding_opts),
         capture_output: o.capture_output
       }}
    end
  end

  @doc """
  The path of `snex_helper`, the small program (built with the NIF, installed next to it in
  `priv/native/`) that starts Python in a process group of its own, reports its exit status
  and kills the group when the BEAM dies.
  """
  @spec helper_path() :: String.t()
  def helper_path do
    case :code.priv_dir(:snex) do
      {:error, _} -> Application.app_dir(:snex, "priv/native/snex_helper")
      priv -> Path.join(to_string(priv), "native/snex_helper")
    end
  end

  defp python(%__MODULE__{python: nil, wrap_exec: nil}), do: PythonLookup.default()
  defp python(%__MODULE__{python: nil}), do: {:ok, "python3"}
  # Through a wrapper, the executable is looked up where the wrapper runs it.
  defp python(%__MODULE__{python: python, wrap_exec: wrap}) when wrap != nil, do: {:ok, python}
  defp python(%__MODULE__{python: python}), do: PythonLookup.resolve(python)

  defp wrap(nil, python, args), do: {python, args}
  defp wrap({m, f, a}, python, args), do: checked_wrap(apply(m, f, a ++ [python, args]))
  defp wrap(fun, python, args), do: checked_wrap(fun.(python, args))

  defp checked_wrap({exec, args} = result) when is_binary(exec) and is_list(args) do
    if String.contains?(exec, "/") do
      result
    else
      {System.find_executable(exec) || exec, args}
    end
  end

  defp checked_wrap(other),
    do: raise(ArgumentError, "wrap_exec must return {executable, args}, got: #{inspect(other)}")

  @doc """
  Environment variables for Python: the user's, with our package on PYTHONPATH and Snex's own
  settings (`SNEX_USE_STDIO`, `SNEX_EAGER`, and `SNEX_READ_LIMIT`: the high watermark of
  `busy_limits_port`, which bounds how far Python's reader reads ahead).
  """
  @spec environment(t()) :: %{String.t() => String.t()}
  def environment(%__MODULE__{} = o) do
    snex_path = Application.app_dir(:snex, "priv/python")

    python_path =
      [snex_path, o.environment["PYTHONPATH"] || System.get_env("PYTHONPATH")]
      |> Enum.reject(&(&1 in [nil, ""]))
      |> Enum.join(":")

    defaults = %{"PYTHONUNBUFFERED" => "1"}

    extra =
      %{"PYTHONPATH" => python_path}
      |> maybe_put(use_stdio?(o), "SNEX_USE_STDIO", "1")
      |> maybe_put(not o.eager_polyfill?, "SNEX_EAGER", "0")
      |> put_read_limit(busy_limits_port(o))

    defaults |> Map.merge(o.environment) |> Map.merge(extra)
  end

  defp put_read_limit(map, nil), do: map
  defp put_read_limit(map, {_low, high}), do: Map.put(map, "SNEX_READ_LIMIT", to_string(high))

  defp maybe_put(map, true, key, value), do: Map.put(map, key, value)
  defp maybe_put(map, false, _key, _value), do: map
end
