defmodule Snex.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([Snex.Registry], strategy: :one_for_one, name: Snex.Supervisor)
  end
end
