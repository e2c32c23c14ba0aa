defmodule Snex.Target do
  @moduledoc false
  # Resolves what a request is addressed to (an interpreter name/pid or a `Snex.Env`) into what
  # the NIF needs, or says that the request must run on another node.

  alias Snex.Env

  @type local :: {:local, pid(), nif_target :: reference(), env_id :: integer()}
  @type t ::
          local() | {:remote, node()} | {:remote, node(), GenServer.server()} | :gone | :timeout

  @doc """
  For an env: its resource, or the interpreter's resource with the env id when the env has
  been to another node and back. For an interpreter: its resource with env id `-1` (a
  throw-away copy of the root env). For a pool (`Snex.Pool`): its least-loaded member, which
  may be another node's pool (`{:remote, node, target}`: run the request there on `target`).
  """
  @spec resolve(Env.t() | GenServer.server(), Snex.Request.deadline()) :: t()
  def resolve(target, deadline \\ :infinity)

  def resolve(%Env{interpreter: pid} = env, _deadline) when node(pid) != node(), do: remote(env)

  def resolve(%Env{id: id, ref: ref, interpreter: pid}, deadline) do
    cond do
      # A pool member being retired that no longer takes calls on its envs.
      Snex.Pool.Table.closing?(pid) ->
        :gone

      Snex.Native.is_env(ref) ->
        {:local, pid, ref, id}

      true ->
        local(pid, id, deadline)
    end
  end

  def resolve(interpreter, deadline), do: lookup(interpreter, :any, deadline)

  @doc """
  Resolves an interpreter to its pid and resource (with env id `-1`, as `resolve/2`). A name
  registered to no process (for instance while a supervisor restarts the interpreter) and a
  dead pid are `:gone`; anything that is not a `t:GenServer.server/0` raises `ArgumentError`.
  A pool's name gives its least-loaded member on this node (`:gone` while it has none); so
  does its pid. An interpreter that is still starting is waited for until `deadline` (then
  `:timeout`).
  """
  @spec interpreter(GenServer.server(), Snex.Request.deadline()) ::
          local() | {:remote, node()} | :gone | :timeout
  def interpreter(interpreter, deadline \\ :infinity),
    do: lookup(interpreter, :local, deadline)

  # A pid registered as an interpreter is one (never a pool's manager): the common case,
  # found without looking at the pools.
  defp lookup(pid, where, deadline) when is_pid(pid) and node(pid) == node() do
    case Snex.Registry.lookup(pid) do
      nil -> pool_or_interpreter(pid, where, deadline)
      res -> {:local, pid, res, -1}
    end
  end

  defp lookup(interpreter, where, deadline) do
    check_server!(interpreter)
    pool_or_interpreter(interpreter, where, deadline)
  end

  defp pool_or_interpreter(interpreter, where, deadline) do
    case pool(interpreter, where) do
      :not_a_pool -> by_name(interpreter, deadline)
      {:local, pid, res} -> {:local, pid, res, -1}
      other -> other
    end
  end

  # Pool names are checked first: the pool's manager is registered under the name.
  defp pool(name, where) when is_atom(name), do: Snex.Pool.Picker.pick(name, where)

  defp pool({name, node}, _where) when is_atom(name) and node == node(),
    do: Snex.Pool.Picker.pick(name, :local)

  # A pool's pid works as its name.
  defp pool(pid, where) when is_pid(pid) and node(pid) == node() do
    case Snex.Pool.Table.name_of(pid) do
      nil -> :not_a_pool
      name -> Snex.Pool.Picker.pick(name, where)
    end
  end

  defp pool(_interpreter, _where), do: :not_a_pool

  defp by_name(interpreter, deadline) do
    case GenServer.whereis(interpreter) do
      pid when is_pid(pid) and node(pid) == node() ->
        local(pid, -1, deadline)

      pid when is_pid(pid) ->
        {:remote, node(pid)}

      {_name, node} ->
        {:remote, node}

      nil ->
        :gone
    end
  end

  # The interpreter `pid` of this node, waited for until `deadline` while it starts.
  defp local(pid, env_id, deadline) do
    case Snex.Interpreter.resource(pid, deadline) do
      nil -> :gone
      :timeout -> :timeout
      res -> {:local, pid, res, env_id}
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
