defmodule Snex.Pool.Options do
  @moduledoc false
  # Validation of `Snex.Pool` options (see its moduledoc for what each one means).

  @keys [
    :name,
    :size,
    :interpreter,
    :max_calls,
    :max_memory,
    :check_interval,
    :retire_grace,
    :retire_timeout,
    :scope,
    :summary_interval,
    :max_restarts,
    :max_seconds
  ]

  defstruct name: nil,
            size: nil,
            interpreter: {Snex.Interpreter, []},
            max_calls: nil,
            max_memory: nil,
            check_interval: 1_000,
            retire_grace: 1_000,
            retire_timeout: 60_000,
            scope: :local,
            summary_interval: 100,
            max_restarts: nil,
            max_seconds: 5

  @type t :: %__MODULE__{
          name: atom(),
          size: pos_integer(),
          interpreter: {module(), keyword()},
          max_calls: pos_integer() | nil,
          max_memory: pos_integer() | nil,
          check_interval: pos_integer(),
          retire_grace: non_neg_integer(),
          retire_timeout: non_neg_integer(),
          scope: :local | :cluster,
          summary_interval: pos_integer(),
          max_restarts: non_neg_integer(),
          max_seconds: pos_integer()
        }

  @doc "Validates `opts` (raising `ArgumentError`) and fills in the defaults."
  @spec validate!(keyword()) :: t()
  def validate!(opts) do
    unless is_list(opts) and Keyword.keyword?(opts),
      do: raise(ArgumentError, "Snex.Pool options must be a keyword list, got: #{inspect(opts)}")

    case Keyword.keys(opts) -- @keys do
      [] -> :ok
      unknown -> raise ArgumentError, "unknown Snex.Pool options: #{inspect(unknown)}"
    end

    o = struct!(__MODULE__, opts)
    size = o.size || System.schedulers_online()

    check!(is_atom(o.name) and o.name not in [nil, true, false], :name, "an atom")
    check!(is_integer(size) and size > 0, :size, "a positive integer")
    check!(limit?(o.max_calls), :max_calls, "a positive integer or nil")
    check!(limit?(o.max_memory), :max_memory, "a positive integer (bytes) or nil")
    check!(positive?(o.check_interval), :check_interval, "a positive integer (ms)")
    check!(non_negative?(o.retire_grace), :retire_grace, "a non-negative integer (ms)")
    check!(non_negative?(o.retire_timeout), :retire_timeout, "a non-negative integer (ms)")
    check!(o.scope in [:local, :cluster], :scope, ":local or :cluster")
    check!(positive?(o.summary_interval), :summary_interval, "a positive integer (ms)")
    check!(o.max_restarts == nil or non_negative?(o.max_restarts), :max_restarts, "an integer")
    check!(positive?(o.max_seconds), :max_seconds, "a positive integer")

    %{
      o
      | size: size,
        interpreter: interpreter!(o.interpreter),
        max_restarts: o.max_restarts || max(3, size)
    }
  end

  defp interpreter!(module) when is_atom(module), do: interpreter!({module, []})

  defp interpreter!({module, opts}) when is_atom(module) and is_list(opts) do
    unless Code.ensure_loaded?(module) and function_exported?(module, :start_link, 1) do
      raise ArgumentError,
            ":interpreter must be an interpreter module with start_link/1, got: #{inspect(module)}"
    end

    if Keyword.has_key?(opts, :name) do
      raise ArgumentError,
            "pool members cannot be named: remove :name from the :interpreter options"
    end

    # The same validation as `Snex.Interpreter.start_link/1`, before any member starts.
    Snex.Interpreter.Options.split!(opts)
    {module, opts}
  end

  defp interpreter!(other),
    do:
      raise(
        ArgumentError,
        ":interpreter must be a module or {module, options}, got: #{inspect(other)}"
      )

  defp limit?(value), do: value == nil or positive?(value)
  defp positive?(value), do: is_integer(value) and value > 0
  defp non_negative?(value), do: is_integer(value) and value >= 0

  defp check!(true, _key, _expected), do: :ok

  defp check!(false, key, expected),
    do: raise(ArgumentError, "Snex.Pool option #{inspect(key)} must be #{expected}")
end
