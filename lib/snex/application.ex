defmodule Snex.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # Python sets decode into MapSets of this Elixir's shape.
    Snex.Native.set_mapset_template(MapSet.new())
    Supervisor.start_link([Snex.Registry], strategy: :one_for_one, name: Snex.Supervisor)
  end
end
