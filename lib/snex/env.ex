defmodule Snex.Env do
  @moduledoc """
  A Python environment (a namespace of variables) living in an interpreter.

  Made by `Snex.make_env/3`. When the last reference to it is garbage collected on the node that
  made it, Python frees the namespace, unless `disable_gc/1` was called; then `Snex.destroy_env/1`
  frees it.
  """

  @enforce_keys [:ref, :interpreter]
  defstruct [:ref, :interpreter]

  @type t :: %__MODULE__{ref: reference(), interpreter: pid()}

  @doc "The interpreter process the environment lives in."
  @spec interpreter(t()) :: pid()
  def interpreter(%__MODULE__{interpreter: pid}), do: pid

  @doc """
  Keeps the environment alive after the last reference to it is gone; free it with
  `Snex.destroy_env/1`. Returns the env.
  """
  @spec disable_gc(t()) :: t()
  def disable_gc(%__MODULE__{ref: ref} = env) do
    Snex.Native.disable_gc(ref)
    env
  end
end

defimpl Inspect, for: Snex.Env do
  def inspect(%Snex.Env{interpreter: pid}, _opts), do: "#Snex.Env<#{:erlang.pid_to_list(pid)}>"
end
