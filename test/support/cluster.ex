defmodule Snex.Test.Cluster do
  @moduledoc false
  # Starts real peer nodes on this machine for cluster tests (epmd is started if needed).

  @doc "Makes this node distributed (once)."
  def ensure_distributed do
    unless Node.alive?() do
      {_, 0} = System.cmd("epmd", ["-daemon"])
      name = :"snex_test_#{System.unique_integer([:positive])}@127.0.0.1"
      {:ok, _} = Node.start(name, :longnames)
    end

    :ok
  end

  @doc "Runs on a peer: starts an interpreter that outlives the calling (erpc) process."
  def start_interpreter(opts) do
    {:ok, pid} = Snex.Interpreter.start_link(opts)
    Process.unlink(pid)
    {:ok, pid}
  end

  @doc "Runs on a peer: starts a `Snex.Pool` that outlives the calling (erpc) process."
  def start_pool(opts) do
    {:ok, pid} = Snex.Pool.start_link(opts)
    Process.unlink(pid)
    {:ok, pid}
  end

  @doc "Runs on a peer: makes an env that outlives the calling (erpc) process."
  def make_kept_env(interpreter, vars) do
    {:ok, env} = Snex.make_env(interpreter, vars)
    {:ok, Snex.Env.disable_gc(env)}
  end

  @doc """
  Runs on a peer: makes an env (garbage collected as usual) held by a new process there;
  returns `{:ok, holder, env}`. `release/1` makes the holder drop it.
  """
  def hold_env(interpreter, vars) do
    caller = self()

    holder =
      spawn(fn ->
        {:ok, env} = Snex.make_env(interpreter, vars)
        send(caller, {:held, env})

        receive do
          {:release, from} ->
            send(from, {:released, Snex.Env.interpreter(env)})
        end
      end)

    receive do
      {:held, env} -> {:ok, holder, env}
    end
  end

  @doc """
  Runs on a peer: the holder drops its env and exits; returns once the garbage of that is
  collected and the interpreter has read whatever that made Snex send it.
  """
  def release(holder) do
    ref = Process.monitor(holder)
    send(holder, {:release, self()})

    interpreter =
      receive do
        {:released, interpreter} -> interpreter
      end

    receive do
      {:DOWN, ^ref, :process, _, _} -> :ok
    end

    :erlang.garbage_collect()
    {:ok, _} = Snex.pyeval(interpreter, "return 1")
    :ok
  end

  @doc "Runs on a peer: registers `name` as a process that forwards what it gets to `to`."
  def start_relay(name, to) do
    pid = spawn(fn -> relay(to) end)
    true = Process.register(pid, name)
    :ok
  end

  defp relay(to) do
    receive do
      msg -> send(to, {:relayed, msg})
    end

    relay(to)
  end

  @doc """
  Starts a peer node with our code paths and the snex application running; `extra_args` are
  more `erl` arguments (charlists), e.g. `[~c"+P", ~c"4096"]`.
  """
  def start_peer(name, extra_args \\ []) do
    ensure_distributed()
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

    {:ok, peer, node} =
      :peer.start_link(%{
        name: name,
        host: ~c"127.0.0.1",
        longnames: true,
        args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie()) | paths ++ extra_args]
      })

    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:snex])
    {peer, node}
  end
end
