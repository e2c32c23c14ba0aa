defmodule Snex.Request do
  @moduledoc false
  # The caller's side of every request to Python, in one struct and one loop: `pyeval`,
  # `make_env`, the init script and the answers to Python's `snex.call`.
  #
  # The deadline is computed once, when the public call starts, and bounds every wait: for an
  # interpreter that is still starting, for a busy limit to drain, and for the reply. The
  # request is submitted straight to the NIF (the interpreter process is not on the path) and
  # the reply comes straight back as `{tag, :ok | :error, body}`; the tag is a monitor of the
  # interpreter process, so its death ends the wait at once with `:call_failed`. On timeout the
  # request is cancelled in the NIF (a late reply is dropped there) and in Python.
  #
  # Submitting may take several NIF calls, each answer saying what to do next:
  #
  #   * `:dirty` - too large for a normal scheduler: again on a dirty CPU scheduler;
  #   * `:protocol` - the value holds structs that may implement `Snex.Serde.Encoder`: apply
  #     the protocol in Elixir (`Snex.Serde.Prewalk`), then again on a dirty scheduler;
  #   * `:locked` - with `parallelism: false`, another caller is submitting: again on a dirty
  #     I/O scheduler, which waits for its turn;
  #   * `:busy` - a busy limit is exceeded: wait for `:snex_writable`, then again.

  alias Snex.Error
  alias Snex.Serde.Prewalk

  @enforce_keys [:kind, :interpreter, :resource, :args, :value, :deadline]
  defstruct [
    :kind,
    :interpreter,
    :resource,
    :args,
    :value,
    :deadline,
    :tag,
    sched: :normal,
    resolved: false
  ]

  @typedoc """
  A request. `kind` is `:eval`, `:make_env`, `:call_fn` or `:call_result`; `resource` is the
  interpreter's (or env's) NIF resource; `args` are that kind's NIF arguments after the
  resource and the tag, without the value to encode and the "structs resolved" flag; `value`
  is the value to encode (the variables, or a call's result); `deadline` is from `deadline/1`.
  `sched` is where the NIF runs next (`:normal`, `:dirty` or `:serial`).
  """
  @type t :: %__MODULE__{
          kind: :eval | :make_env | :call_fn | :call_result,
          interpreter: pid(),
          resource: reference(),
          args: list(),
          value: term(),
          deadline: deadline(),
          tag: reference() | nil,
          sched: :normal | :dirty | :serial,
          resolved: boolean()
        }

  @type deadline :: integer() | :infinity

  @doc "Submits `request` and waits for its reply."
  @spec run(t()) :: {:ok, term()} | {:error, Error.t()}
  def run(%__MODULE__{interpreter: pid} = request) do
    request = %{request | tag: Process.monitor(pid)}

    case submit(request) do
      {:ok, id, extra} ->
        request |> await(id) |> with_extra(extra)

      {:error, :closed} ->
        closed(request)

      {:error, %Error{}} = error ->
        Process.demonitor(request.tag, [:flush])
        error
    end
  end

  @doc """
  Submits `request` (whose `tag` is set) until the NIF takes it: `{:ok, request_id, extra}`
  (`extra` is what the NIF adds, e.g. the new env of `make_env`), `{:error, :closed}` when the
  interpreter is shutting down, or `{:error, %Snex.Error{}}`.
  """
  @spec submit(t()) :: {:ok, term(), term()} | {:error, :closed | Error.t()}
  def submit(%__MODULE__{} = request) do
    case call_nif(request) do
      {:ok, id} ->
        {:ok, id, nil}

      {:ok, id, extra} ->
        {:ok, id, extra}

      :ok ->
        {:ok, nil, nil}

      :dirty ->
        submit(%{request | sched: :dirty})

      :locked ->
        submit(%{request | sched: :serial})

      :protocol ->
        sched = if request.sched == :serial, do: :serial, else: :dirty
        submit(%{request | value: Prewalk.resolve(request.value), resolved: true, sched: sched})

      :busy ->
        with :ok <- wait_writable(request), do: submit(request)

      {:error, {:encode_error, message}} ->
        {:error, Error.new(:encode_error, message)}

      {:error, :closed} ->
        {:error, :closed}
    end
  end

  # The NIF's tuple: `{kind, resource, tag, args..., value, resolved}`; a `:call_result`
  # answers Python's call and has no tag.
  defp call_nif(%__MODULE__{kind: kind, resource: resource, args: args} = r) do
    args = args ++ [r.value, r.resolved]
    args = if kind == :call_result, do: args, else: [r.tag | args]
    nif_request = List.to_tuple([kind, resource | args])

    case r.sched do
      :normal -> Snex.Native.submit(nif_request)
      :dirty -> Snex.Native.submit_dirty(nif_request)
      :serial -> Snex.Native.submit_serial(nif_request)
    end
  end

  defp with_extra({:ok, _value}, extra) when extra != nil, do: {:ok, extra}
  defp with_extra(other, _extra), do: other

  @doc "Waits for the reply of request `id` until the request's deadline."
  @spec await(t(), non_neg_integer()) :: {:ok, term()} | {:error, Error.t()}
  def await(%__MODULE__{tag: tag, resource: resource, deadline: deadline} = request, id) do
    receive do
      {^tag, :output, body} ->
        write_output(body)
        await(request, id)

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
          await(%{request | deadline: :infinity}, id)
        end
    end
  end

  # What the request's code printed (`capture_output`): to the caller's group leader.
  defp write_output(body) do
    case Snex.Serde.Decoder.decode(body) do
      {:ok, {_stream, text}} when is_binary(text) -> IO.write(Process.group_leader(), text)
      _ -> :ok
    end
  end

  # The interpreter is shutting down; report its exit reason if it comes soon.
  defp closed(%__MODULE__{tag: tag, deadline: deadline}) do
    receive do
      {:DOWN, ^tag, :process, _, reason} -> {:error, Error.new(:call_failed, reason)}
    after
      min(remaining(deadline), 1000) ->
        Process.demonitor(tag, [:flush])
        {:error, Error.new(:call_failed, :interpreter_closed)}
    end
  end

  defp wait_writable(%__MODULE__{tag: tag, resource: resource, deadline: deadline}) do
    receive do
      :snex_writable ->
        :ok

      {:DOWN, ^tag, :process, _, reason} ->
        stop_waiting(resource)
        {:error, Error.new(:call_failed, reason)}
    after
      remaining(deadline) ->
        stop_waiting(resource)
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
  (`body` is `{code, reason, traceback, python_type}`).
  """
  @spec to_result(:ok | :error, Snex.Serde.Decoder.body()) :: {:ok, term()} | {:error, Error.t()}
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

  @doc "The timeout (ms) of `pyeval` and `call` when the caller gives none."
  @spec default_timeout() :: timeout()
  def default_timeout, do: 5_000

  @doc "The monotonic time (ms) at which `timeout` runs out from now, or `:infinity`."
  @spec deadline(timeout()) :: deadline()
  def deadline(:infinity), do: :infinity
  def deadline(ms), do: System.monotonic_time(:millisecond) + ms

  @doc "Milliseconds left until `deadline` (never negative), for `receive ... after`."
  @spec remaining(deadline()) :: timeout()
  def remaining(:infinity), do: :infinity
  def remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)
end
