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
  `Snex.destroy_env/1`. Returns the env. Call it on the node that made the env (envs made
  from another node have garbage collection disabled already).
  """
  @spec disable_gc(t()) :: t()
  def disable_gc(%__MODULE__{ref: ref} = env) do
    unless Snex.Native.is_env(ref) do
      raise ArgumentError, "disable_gc/1 must be called on the node that made the env"
    end

    Snex.Native.disable_gc(ref)
    env
  end
end

defimpl Inspect, for: Snex.Env do
  def inspect(%Snex.Env{interpreter: pid}, _opts), do: "#Snex.Env<#{:erlang.pid_to_list(pid)}>"
end
