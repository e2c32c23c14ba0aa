defmodule Snex.DirectCall do
  @moduledoc false
  # `Snex.call/5`: calls a Python function by module and name with a `CALL_FN` request: no code
  # to compile, nothing set in any env, and the function runs without a task unless it returns
  # an awaitable.

  alias Snex.Request

  @doc "See `Snex.call/5`."
  @spec call(Snex.interpreter() | Snex.Env.t(), String.t(), String.t(), list(), keyword()) ::
          {:ok, term()} | {:error, Snex.Error.t()}
  def call(target, module, function, args, opts)
      when is_binary(module) and is_binary(function) and is_list(args) and is_list(opts) do
    {kwargs, opts} = Keyword.pop(opts, :kwargs, %{})
    kwargs = kwargs!(kwargs)

    case Keyword.keys(opts) -- [:timeout, :encoding_opts] do
      [] -> :ok
      unknown -> raise ArgumentError, "unknown options for Snex.call/5: #{inspect(unknown)}"
    end

    timeout = Keyword.get(opts, :timeout, Request.default_timeout())

    encoding = Snex.Serde.EncodingOpts.packed!(opts)

    remote_args = fn target -> [target, module, function, args, [kwargs: kwargs] ++ opts] end

    Snex.__dispatch__(target, timeout, :call, remote_args, fn pid, nif_target, env_id, deadline ->
      Request.run(%Request{
        kind: :call_fn,
        interpreter: pid,
        resource: nif_target,
        args: [env_id, module, function, encoding],
        value: {args, kwargs},
        deadline: deadline
      })
    end)
  end

  def call(_target, module, function, args, opts),
    do:
      raise(
        ArgumentError,
        "Snex.call/5 takes a module and a function name as strings, a list of arguments and " <>
          "options, got: #{inspect({module, function, args, opts})}"
      )

  defp kwargs!(kwargs) when is_map(kwargs) or is_list(kwargs) do
    Map.new(kwargs, fn
      {key, value} when is_atom(key) or is_binary(key) -> {to_string(key), value}
      other -> raise ArgumentError, "kwargs: expected {name, value} pairs, got: #{inspect(other)}"
    end)
  end

  defp kwargs!(other),
    do: raise(ArgumentError, "kwargs must be a map or a keyword list, got: #{inspect(other)}")
end
