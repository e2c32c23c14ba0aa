defmodule Snex.Target do
  @moduledoc false
  # Resolves what a request is addressed to (an interpreter name/pid or a `Snex.Env`) into what
  # the NIF needs, or says that the request must run on another node.

  alias Snex.Env

  @type local :: {:local, pid(), nif_target :: reference(), env_id :: integer()}
  @type t :: local() | {:remote, node()} | :gone

  @doc """
  For an env: its resource, or the interpreter's resource with the env id when the env has
  been to another node and back. For an interpreter: its resource with env id `-1` (a
  throw-away copy of the root env).
  """
  @spec resolve(Env.t() | GenServer.server()) :: t()
  def resolve(%Env{interpreter: pid} = env) when node(pid) != node(), do: remote(env)

  def resolve(%Env{id: id, ref: ref, interpreter: pid}) do
    cond do
      Snex.Native.is_env(ref) -> {:local, pid, ref, id}
      res = Snex.Interpreter.resource(pid) -> {:local, pid, res, id}
      true -> :gone
    end
  end

  def resolve(interpreter) do
    case interpreter(interpreter) do
      {:local, pid, res} -> {:local, pid, res, -1}
      other -> other
    end
  end

  @doc """
  Resolves an interpreter to its pid and resource. A name registered to no process (for
  instance while a supervisor restarts the interpreter) and a dead pid are `:gone`; anything
  that is not a `t:GenServer.server/0` raises `ArgumentError`.
  """
  @spec interpreter(GenServer.server()) ::
          {:local, pid(), reference()} | {:remote, node()} | :gone
  def interpreter(interpreter) do
    check_server!(interpreter)

    case GenServer.whereis(interpreter) do
      pid when is_pid(pid) and node(pid) == node() ->
        case Snex.Interpreter.resource(pid) do
          nil -> :gone
          res -> {:local, pid, res}
        end

      pid when is_pid(pid) ->
        {:remote, node(pid)}

      {_name, node} ->
        {:remote, node}

      nil ->
        :gone
    end
  end

  defp check_server!(pid) when is_pid(pid), do: :ok
  defp check_server!(name) when is_atom(name) and name != nil, do: :ok
  defp check_server!({:global, _name}), do: :ok
  defp check_server!({:via, module, _name}) when is_atom(module), do: :ok
  defp check_server!({name, node}) when is_atom(name) and is_atom(node), do: :ok

  defp check_server!(other),
    do: raise(ArgumentError, "not an interpreter (a pid or a name): #{inspect(other)}")

  defp remote(%Env{interpreter: pid}), do: {:remote, node(pid)}
end
