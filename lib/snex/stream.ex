defmodule Snex.Stream do
  @moduledoc false
  # `Snex.stream/4`: a lazy Stream over what Python code returns. The code runs in an
  # environment of the stream's own (a copy of the given env, or of the root env), where the
  # iterable stays; each demand for items reads one batch with one request. Halting the stream
  # closes the iterable in Python; when the consuming process dies, the environment is garbage
  # collected and Python drops (and so closes) the iterable.

  alias Snex.Error

  @default_batch_size 1_000

  @doc "See `Snex.stream/4`."
  @spec stream(Snex.interpreter() | Snex.Env.t(), Snex.code(), Snex.vars(), keyword()) ::
          Enumerable.t()
  def stream(target, code, vars, opts) do
    {src, file, line} = Snex.Code.parts(code)

    batch_size = Keyword.get(opts, :batch_size, @default_batch_size)

    unless is_integer(batch_size) and batch_size > 0,
      do:
        raise(
          ArgumentError,
          ":batch_size must be a positive integer, got: #{inspect(batch_size)}"
        )

    call_opts = Keyword.take(opts, [:timeout, :encoding_opts])

    Stream.resource(
      fn -> open(target, {src, file, line}, vars, call_opts) end,
      &next_batch(&1, batch_size),
      &close/1
    )
  end

  # `opts` are the stream's `:timeout` and `:encoding_opts` only.
  defp open(target, {src, file, line}, vars, opts) do
    made =
      case target do
        %Snex.Env{} = env -> Snex.make_env(vars, [from: env] ++ opts)
        interpreter -> Snex.make_env(interpreter, vars, opts)
      end

    with {:ok, env} <- made,
         {:ok, nil} <-
           Snex.pyeval(
             env,
             "await snex.streams.open_stream(globals(), __snex_src__, __snex_file__, __snex_line__)",
             %{"__snex_src__" => src, "__snex_file__" => file, "__snex_line__" => line},
             Keyword.take(opts, [:timeout])
           ) do
      %{env: env, opts: opts, done: false}
    else
      {:error, %Error{} = error} -> raise error
    end
  end

  defp next_batch(%{done: true} = state, _size), do: {:halt, state}

  defp next_batch(%{env: env, opts: opts} = state, size) do
    case Snex.pyeval(env, "return await snex.streams.next_batch(globals(), #{size})", opts) do
      {:ok, {items, done}} -> {items, %{state | done: done}}
      {:error, %Error{} = error} -> raise error
    end
  end

  defp close(%{env: env, opts: opts}) do
    _ =
      Snex.pyeval(
        env,
        "await snex.streams.close_stream(globals())",
        Keyword.take(opts, [:timeout])
      )

    Snex.destroy_env(env)
  end
end
