defmodule Snex.Env do
  @moduledoc """
  A Python environment (a namespace of variables) living in an interpreter.

  Made by `Snex.make_env/3`. When the last reference to it is garbage collected on the node that
  made it, Python frees the namespace, unless `disable_gc/1` was called; then `Snex.destroy_env/1`
  frees it.
  """

  @enforce_keys [:id, :ref, :interpreter]
  defstruct [:id, :ref, :interpreter]

  # `ref` is the NIF resource that counts references for garbage collection; it is only valid
  # on the node that made the env. `id` and `interpreter` identify the env anywhere.
  @type t :: %__MODULE__{id: pos_integer(), ref: reference(), interpreter: pid()}

  @doc "The interpreter process the environment lives in."
  @spec interpreter(t()) :: pid()
  def interpreter(%__MODULE__{interpreter: pid}), do: pid

  @doc """
  Keeps the environment alive after the last reference to it is gone; free it with
  `Snex.destroy_env/1`. Returns the env.

  Works from any node: called away from the env's home node (the node of its interpreter,
  where its references are counted), it asks the home node. An env whose references were all
  gone already has been freed, and stays so.
  """
  @spec disable_gc(t()) :: t()
  def disable_gc(%__MODULE__{ref: ref, interpreter: pid} = env) do
    cond do
      Snex.Native.is_env(ref) -> Snex.Native.disable_gc(ref)
      node(pid) != node() -> disable_gc_on(node(pid), env)
      true -> :ok
    end

    env
  end

  # A node that cannot be reached holds the env's interpreter: nothing to keep alive from here.
  defp disable_gc_on(home, env) do
    :erpc.call(home, __MODULE__, :disable_gc, [env])
  catch
    _kind, _reason -> :ok
  end
end

defimpl Inspect, for: Snex.Env do
  def inspect(%Snex.Env{interpreter: pid}, _opts), do: "#Snex.Env<#{:erlang.pid_to_list(pid)}>"
end
