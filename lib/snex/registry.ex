defmodule Snex.Registry do
  @moduledoc false
  # Maps a running interpreter's pid to its NIF resource, so that callers can submit requests
  # straight to the NIF without asking the interpreter process. Entries are removed when the
  # interpreter exits (this process monitors every registered interpreter).
  use GenServer

  @table __MODULE__

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc "Registers the calling interpreter process with its resource."
  @spec register(reference()) :: :ok
  def register(resource) do
    :ets.insert(@table, {self(), resource})
    GenServer.cast(__MODULE__, {:monitor, self()})
  end

  @doc "Removes the calling interpreter process."
  @spec unregister() :: :ok
  def unregister do
    :ets.delete(@table, self())
    :ok
  end

  @doc "The resource of the interpreter `pid` on this node, or nil."
  @spec lookup(pid()) :: reference() | nil
  def lookup(pid) do
    case :ets.lookup(@table, pid) do
      [{_, resource}] -> resource
      [] -> nil
    end
  end

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, nil}
  end

  @impl true
  def handle_cast({:monitor, pid}, state) do
    Process.monitor(pid)
    {:noreply, state}
  end

  @impl true
  def handle_info({:DOWN, _, :process, pid, _}, state) do
    :ets.delete(@table, pid)
    {:noreply, state}
  end
end
