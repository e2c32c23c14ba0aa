defmodule Snex.DirectCall do
  @moduledoc false
  # `Snex.call/5`: calls a Python function by module and name, without Python source of the
  # caller's. The call travels as one variable that the Python side removes again, so an env
  # used as the target is left as it was.

  @code "return await snex.direct.call_in(globals())"

  @doc "See `Snex.call/5`."
  @spec call(Snex.interpreter() | Snex.Env.t(), String.t(), String.t(), list(), keyword()) ::
          {:ok, term()} | {:error, Snex.Error.t()}
  def call(target, module, function, args, opts)
      when is_binary(module) and is_binary(function) and is_list(args) and is_list(opts) do
    {kwargs, opts} = Keyword.pop(opts, :kwargs, %{})
    call = {module, function, args, kwargs!(kwargs)}
    Snex.pyeval(target, @code, %{"__snex_call__" => call}, opts)
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
