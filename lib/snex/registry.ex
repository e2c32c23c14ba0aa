defmodule Snex.Registry do
  @moduledoc false
  # Maps a running interpreter's pid to its NIF resource, so that callers can submit requests
  # straight to the NIF without asking the interpreter process: an Elixir `Registry` keyed by
  # the interpreter's pid, whose entry goes when the interpreter exits.

  @doc "The child spec of the registry."
  @spec child_spec(term()) :: Supervisor.child_spec()
  def child_spec(_), do: Registry.child_spec(keys: :unique, name: __MODULE__)

  @doc "Registers the calling interpreter process with its resource."
  @spec register(reference()) :: :ok
  def register(resource) do
    {:ok, _} = Registry.register(__MODULE__, self(), resource)
    :ok
  end

  @doc "Removes the calling interpreter process."
  @spec unregister() :: :ok
  def unregister, do: Registry.unregister(__MODULE__, self())

  @doc "The resource of the interpreter `pid` on this node, or nil."
  @spec lookup(pid()) :: reference() | nil
  def lookup(pid) do
    case Registry.lookup(__MODULE__, pid) do
      [{_, resource}] -> resource
      [] -> nil
    end
  end
end
