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
  How the NIF is called: `:normal` (first try, normal scheduler), `:dirty` (too big for a
  normal scheduler: dirty CPU scheduler), `:resolved` (apply the `Snex.Serde.Encoder` protocol
  first, dirty CPU scheduler), `:serial` and `:serial_resolved` (with `parallelism: false`,
  another caller was submitting: wait for the turn on a dirty I/O scheduler); see `invoke/3`.
  """
  @type mode :: :normal | :dirty | :resolved | :serial | :serial_resolved

  @typedoc "Submits the request: gets the tag and the mode, returns the NIF's answer."
  @type submit_fun :: (reference(), mode() -> term())

  @typedoc """
  Builds the NIF's arguments from a transform of the value to encode and extra option bits.
  """
  @type args_fun :: ((term() -> term()), non_neg_integer() -> list())

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

      retry when retry in [:dirty, :protocol, :locked] ->
        submit(resource, tag, submit, next_mode(mode, retry), deadline)

      :busy ->
        case wait_writable(resource, tag, deadline) do
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
  The mode to retry in after the NIF answered `answer` (`:dirty`, `:protocol` or `:locked`)
  in `mode`.
  """
  @spec next_mode(mode(), :dirty | :protocol | :locked) :: mode()
  def next_mode(:normal, :dirty), do: :dirty
  def next_mode(mode, :protocol) when mode in [:serial, :serial_resolved], do: :serial_resolved
  def next_mode(_mode, :protocol), do: :resolved
  def next_mode(mode, :locked) when mode in [:resolved, :serial_resolved], do: :serial_resolved
  def next_mode(_mode, :locked), do: :serial

  @doc """
  Calls NIF function `fun` in `mode`: `args_fun.(transform, extra_opts)` builds its arguments,
  applying `transform` to the value to encode and OR-ing `extra_opts` into the packed options.
  """
  @spec invoke(atom(), mode(), args_fun()) :: term()
  def invoke(fun, :normal, args_fun), do: apply(Snex.Native, fun, args_fun.(& &1, 0))
  def invoke(fun, :dirty, args_fun), do: apply(Snex.Native, dirty(fun), args_fun.(& &1, 0))

  def invoke(fun, :resolved, args_fun),
    do: apply(Snex.Native, dirty(fun), args_fun.(&Snex.Serde.Prewalk.resolve/1, 0x80))

  def invoke(fun, :serial, args_fun), do: apply(Snex.Native, serial(fun), args_fun.(& &1, 0))

  def invoke(fun, :serial_resolved, args_fun),
    do: apply(Snex.Native, serial(fun), args_fun.(&Snex.Serde.Prewalk.resolve/1, 0x80))

  @doc """
  Calls NIF function `fun` until it has an answer other than a request to retry in another
  mode (`:dirty`, `:protocol`, `:locked`): for submitters that do not wait for the busy limits.
  """
  @spec invoke_all(atom(), args_fun(), mode()) :: term()
  def invoke_all(fun, args_fun, mode \\ :normal) do
    case invoke(fun, mode, args_fun) do
      retry when retry in [:dirty, :protocol, :locked] ->
        invoke_all(fun, args_fun, next_mode(mode, retry))

      other ->
        other
    end
  end

  defp dirty(:eval), do: :eval_dirty
  defp dirty(:make_env), do: :make_env_dirty
  defp dirty(:call_result), do: :call_result_dirty

  defp serial(:eval), do: :eval_serial
  defp serial(:make_env), do: :make_env_serial
  defp serial(:call_result), do: :call_result_serial

  defp wrap_extra({:ok, _value}, extra) when extra != nil, do: {:ok, extra}
  defp wrap_extra(other, _extra), do: other

  defp await(resource, tag, id, deadline) do
    receive do
      {^tag, outcome, body} ->
        Process.demonitor(tag, [:flush])
        to_result(outcome, body)

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

  defp wait_writable(resource, tag, deadline) do
    receive do
      :snex_writable ->
        :ok

      {:DOWN, ^tag, :process, _, reason} ->
        stop_waiting(resource)
        {:error, Error.new(:call_failed, reason)}
    after
      remaining(deadline) ->
        stop_waiting(resource)
        Process.demonitor(tag, [:flush])
        {:error, Error.new(:response_timeout, "the interpreter's queue stayed full")}
    end
  end

  # Leaves no `:snex_writable` behind in the caller's mailbox: either the writer has not woken
  # us yet (then it never will), or its message is already on its way.
  defp stop_waiting(resource) do
    unless Snex.Native.forget_waiter(resource) do
      receive do
        :snex_writable -> :ok
      after
        1_000 -> :ok
      end
    end
  end

  @doc """
  The result of a reply Python sent: `outcome` is `:ok` (`body` is the value) or `:error`
  (`body` is `{code, reason, traceback}`).
  """
  @spec to_result(:ok | :error, binary()) :: {:ok, term()} | {:error, Error.t()}
  def to_result(outcome, body) do
    case {outcome, Snex.Serde.Decoder.decode(body)} do
      {:ok, {:ok, value}} ->
        {:ok, value}

      {:error, {:ok, {code, reason, traceback, python_type}}} when is_atom(code) ->
        {:error, %{Error.new(code, reason, traceback) | python_type: python_type}}

      {:error, {:ok, {code, reason, traceback}}} when is_atom(code) ->
        {:error, Error.new(code, reason, traceback)}

      {:error, {:ok, other}} ->
        {:error, Error.new(:internal_error, other)}

      {_, {:error, message}} ->
        {:error, Error.new(:decode_error, "cannot decode the value Python returned: " <> message)}
    end
  end

  @doc "The monotonic time (ms) at which `timeout` runs out from now, or `:infinity`."
  @spec deadline(timeout()) :: integer() | :infinity
  def deadline(:infinity), do: :infinity
  def deadline(ms), do: System.monotonic_time(:millisecond) + ms

  @doc "Milliseconds left until `deadline` (never negative), for `receive ... after`."
  @spec remaining(integer() | :infinity) :: timeout()
  def remaining(:infinity), do: :infinity
  def remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)
end
