defmodule Snex.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # Python sets decode into MapSets of this Elixir's shape.
    Snex.Native.set_mapset_template(MapSet.new())
    children = [Snex.Registry, Snex.Pool.Table, Snex.Pool.Cluster.scope_child_spec()]
    Supervisor.start_link(children, strategy: :one_for_one, name: Snex.Supervisor)
  end
end
