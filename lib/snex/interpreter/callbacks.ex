defmodule Snex.Interpreter.Callbacks do
  @moduledoc false
  # Serves Python's requests to the BEAM (`snex.call`, `snex.cast`, `snex.send`). Calls and casts
  # run in their own processes, never in the interpreter process, so a slow call does not hold
  # up the interpreter.
  require Logger

  alias Snex.Serde.EncodingOpts

  @doc "Decodes and handles one request forwarded, undecoded, by the NIF's reader thread."
  @spec handle_raw(:call | :cast | :send, non_neg_integer(), binary(), reference(), struct()) ::
          :ok
  def handle_raw(kind, id, body, res, options) do
    decoded =
      case Snex.Serde.Decoder.decode(body) do
        {:ok, term} -> term
        {:error, message} -> {:decode_error, message}
      end

    handle(kind, id, decoded, res, options)
  end

  @doc "Handles one decoded request."
  @spec handle(:call | :cast | :send, non_neg_integer(), term(), reference(), struct()) :: :ok
  def handle(:call, id, {:decode_error, message}, res, _options) do
    reply(res, id, false, "Snex could not decode the call: #{message}", [])
  end

  def handle(kind, _id, {:decode_error, message}, _res, _options) do
    Logger.error("Snex: could not decode a #{kind} from Python: #{message}")
  end

  def handle(:call, id, {module, function, args, node, result_opts}, res, _options) do
    spawn(fn ->
      opts = result_opts(result_opts)

      case apply_somewhere(node, module, function, args) do
        {:ok, value} -> reply(res, id, true, value, opts)
        {:error, message} -> reply(res, id, false, message, [])
      end
    end)

    :ok
  end

  def handle(:cast, _id, {module, function, args, node}, _res, _options) do
    spawn(fn ->
      case apply_somewhere(node, module, function, args) do
        {:ok, _} -> :ok
        {:error, message} -> Logger.error("Snex: cast from Python failed: " <> message)
      end
    end)

    :ok
  end

  def handle(:send, _id, {to, data}, _res, _options) do
    try do
      send(to, data)
    rescue
      error -> Logger.error("Snex: send from Python to #{inspect(to)} failed: #{inspect(error)}")
    end

    :ok
  end

  def handle(kind, _id, body, _res, _options) do
    Logger.error("Snex: malformed #{kind} request from Python: #{inspect(body, limit: 20)}")
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
    packed = EncodingOpts.pack(opts)

    args = fn transform, extra -> [res, id, ok, transform.(value), packed + extra] end

    case Snex.Request.invoke_all(:call_result, args) do
      {:error, {:encode_error, message}} ->
        reply(res, id, false, "Snex could not encode the call result: #{message}", [])

      _ ->
        :ok
    end
  end
end
