defmodule Snex.Request do
  @moduledoc false
  # The caller's side of a request: submit through the NIF (the interpreter process is not on
  # the path), then wait for `{tag, reply}`, sent by the NIF's reader thread straight to us.
  #
  # The tag is a monitor of the interpreter process, so its death ends the wait at once with
  # `:call_failed`. On timeout the request is cancelled in the NIF (a late reply is dropped
  # there) and in Python.

  alias Snex.Error

  @typedoc """
  Submits the request: gets the tag and the mode, returns the NIF's answer. Modes: `:normal`
  (first try), `:dirty` (too big for a normal scheduler), `:resolved` (apply the
  `Snex.Serde.Encoder` protocol first); see `invoke/3`.
  """
  @type mode :: :normal | :dirty | :resolved
  @type submit_fun :: (reference(), mode() -> term())

  @doc "Runs one request against `interpreter` (pid) with NIF resource `resource`."
  @spec run(pid(), reference(), submit_fun(), timeout()) ::
          {:ok, term()} | {:ok, term(), term()} | {:error, Error.t()}
  def run(interpreter, resource, submit, timeout) do
    tag = Process.monitor(interpreter)
    deadline = deadline(timeout)
    submit(resource, tag, submit, :normal, deadline)
  end

  defp submit(resource, tag, submit, mode, deadline) do
    case submit.(tag, mode) do
      {:ok, id} ->
        await(resource, tag, id, deadline) |> wrap_extra(nil)

      {:ok, id, extra} ->
        await(resource, tag, id, deadline) |> wrap_extra(extra)

      :dirty ->
        submit(resource, tag, submit, :dirty, deadline)

      :protocol ->
        submit(resource, tag, submit, :resolved, deadline)

      :busy ->
        case wait_writable(tag, deadline) do
          :ok -> submit(resource, tag, submit, mode, deadline)
          error -> error
        end

      {:error, {:encode_error, message}} ->
        Process.demonitor(tag, [:flush])
        {:error, Error.new(:encode_error, message)}

      {:error, :closed} ->
        # The interpreter is shutting down; report its exit reason if it comes soon.
        receive do
          {:DOWN, ^tag, :process, _, reason} -> {:error, Error.new(:call_failed, reason)}
        after
          min(remaining(deadline), 1000) ->
            Process.demonitor(tag, [:flush])
            {:error, Error.new(:call_failed, :interpreter_closed)}
        end
    end
  end

  @doc """
  Calls NIF function `fun` in `mode`: `args_fun.(transform, extra_opts)` builds its arguments,
  applying `transform` to the value to encode and OR-ing `extra_opts` into the packed options.
  """
  @spec invoke(atom(), mode(), ((term() -> term()), non_neg_integer() -> list())) :: term()
  def invoke(fun, :normal, args_fun), do: apply(Snex.Native, fun, args_fun.(& &1, 0))

  def invoke(fun, :dirty, args_fun),
    do: apply(Snex.Native, :"#{fun}_dirty", args_fun.(& &1, 0))

  def invoke(fun, :resolved, args_fun),
    do: apply(Snex.Native, :"#{fun}_dirty", args_fun.(&Snex.Serde.Prewalk.resolve/1, 0x80))

  defp wrap_extra({:ok, _value}, extra) when extra != nil, do: {:ok, extra}
  defp wrap_extra(other, _extra), do: other

  defp await(resource, tag, id, deadline) do
    receive do
      {^tag, reply} ->
        Process.demonitor(tag, [:flush])
        to_result(reply)

      {:DOWN, ^tag, :process, _, reason} ->
        Snex.Native.cancel(resource, id)
        {:error, Error.new(:call_failed, reason)}
    after
      remaining(deadline) ->
        if Snex.Native.cancel(resource, id) do
          Process.demonitor(tag, [:flush])
          {:error, Error.new(:response_timeout, "no reply within the timeout")}
        else
          # The reply was already on its way: take it.
          await(resource, tag, id, :infinity)
        end
    end
  end

  defp wait_writable(tag, deadline) do
    receive do
      :snex_writable ->
        :ok

      {:DOWN, ^tag, :process, _, reason} ->
        {:error, Error.new(:call_failed, reason)}
    after
      remaining(deadline) ->
        Process.demonitor(tag, [:flush])
        {:error, Error.new(:response_timeout, "the interpreter's queue stayed full")}
    end
  end

  defp to_result({:ok, value}), do: {:ok, value}

  defp to_result({:error, {code, reason, traceback}}) when is_atom(code),
    do: {:error, Error.new(code, reason, traceback)}

  defp to_result(other), do: {:error, Error.new(:internal_error, other)}

  defp deadline(:infinity), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)
end
