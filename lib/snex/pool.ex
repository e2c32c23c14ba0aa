defmodule Snex.Pool do
  @moduledoc """
  A supervised set of interpreters used like one.

      children = [
        {Snex.Pool, name: MyApp.Py, size: 4, interpreter: MyApp.NumpyInterpreter}
      ]

      {:ok, 3.0} = Snex.call(MyApp.Py, "math", "sqrt", [9])
      {:ok, env} = Snex.make_env(MyApp.Py, %{"x" => 1})
      {:ok, 2} = Snex.pyeval(env, "return x + 1")

  The pool's name (or the pid `start_link/1` returns) works wherever an interpreter does in
  `Snex.pyeval/4`, `Snex.make_env/3`, `Snex.stream/4` and `Snex.call/5`:

    * `Snex.pyeval/4` and `Snex.call/5` on the name run on the least-loaded member: the one with
      the fewest requests waiting for their reply. The caller picks it itself, from a public
      ETS table and the members' native request counters, without a message to any process.
    * `Snex.make_env/3` on the name makes the environment in the least-loaded member of this
      node, and every call on that env goes to that member (the env carries its interpreter).
      `Snex.stream/4` on the name works the same way: the stream stays on one member.
    * `{name, node}` is the pool of that name on `node`, using only that node's members.

  ## Options

    * `:name` - an atom (required); the pool's process is registered under it.
    * `:size` - the number of members (default: `System.schedulers_online/0`).
    * `:interpreter` - an interpreter module (`use Snex.Interpreter`) or
      `{module, options}` (default: `Snex.Interpreter` with default options). Members are
      anonymous (no `:name`) and always start with `sync_start?: false`, so that they start
      in parallel; a member joins the pool once its init script has run. `start_link/1` returns
      when every first member has, or returns the error of the first member that fails.
    * `:max_calls` - retire a member after it has been sent that many requests (every
      `pyeval`, `call`, `make_env` and stream batch counts, its init script too). Default: no
      limit.
    * `:max_memory` - retire a member whose Python process's resident set size exceeds this
      many bytes, checked every `:check_interval` ms (`VmRSS` of `/proc/<pid>/status` on Linux,
      `ps` elsewhere; with `:wrap_exec`, the wrapper's process). Default: no limit.
    * `:check_interval` - milliseconds between the checks of `:max_memory` and `:max_calls`
      (default 1 000).
    * `:retire_grace` - a retiring member is stopped once nothing is pending on it and nothing
      was sent to it for this many milliseconds (default 1 000).
    * `:retire_timeout` - how long a retiring member whose environments keep it busy is kept
      (default 60 000 ms): then calls on its environments are refused (`call_failed`), and it
      is stopped once its pending requests are done.
    * `:scope` - `:local` (default) or `:cluster` (see "Across nodes").
    * `:summary_interval` - with `scope: :cluster`, milliseconds between two load summaries
      sent to the other nodes (default 100).
    * `:max_restarts`, `:max_seconds` - if members die or fail to start more than
      `max_restarts` times within `max_seconds` seconds, the pool exits (defaults: the size, at
      least 3, and 5 s), like a supervisor.

  Unknown options, and options of the interpreter that `Snex.Interpreter.start_link/1` would
  refuse, raise `ArgumentError`.

  ## Recycling

  A member that reaches `:max_calls` or `:max_memory` is retired without failing any call: a
  fresh member starts, and when it is ready it takes the retiring member's place, so that the
  pool never has fewer members because of recycling. The retiring member gets no new work from
  the pool's name but finishes what it has: it is stopped once nothing is pending on it and it
  has been quiet for `:retire_grace` (enough for a caller that picked it just before it retired
  to submit its request). Calls on its environments still go to it until then; afterwards they
  return `{:error, %Snex.Error{code: :call_failed}}` (the environment is gone with its
  interpreter), and so do streams made on it.

  The only call recycling could fail is one whose caller picked the member and then took
  longer than `:retire_grace` to submit the request (encoding an enormous value on a busy
  node, say): raise `:retire_grace` for such loads.

  ## Failures

  A member that dies (Python crashed, the process was killed) is replaced at once. Its pending
  callers get `{:error, %Snex.Error{code: :call_failed}}`; the other members' callers are not
  affected. Envs made on it are gone.

  ## Across nodes

  Pools started with the same name and `scope: :cluster` on several nodes of a cluster join
  one `:pg` group (scope `Snex.Pool.Scope`, started by Snex's application) and send each
  other a summary of their load every `:summary_interval`. A `Snex.pyeval/4` or
  `Snex.call/5` on the name prefers the local members, and goes to another node's pool when
  all local members are busier than that node's least-loaded member (by its latest summary;
  that node then picks its least-loaded member). If that node goes down with calls in flight,
  they return `{:error, %Snex.Error{code: :call_failed}}`. `Snex.make_env/3` and
  `Snex.stream/4` on the name always use a local member: an env made from another node would
  not be garbage collected.
  """

  alias Snex.Pool.{Manager, Options}

  @typedoc "A pool's name, or `{name, node}` for the pool of that name on `node`."
  @type pool :: atom() | {atom(), node()}

  @doc "Starts a pool linked to the caller. See the module doc for the options."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: opts |> Options.validate!() |> Manager.start_link()

  @doc """
  A child spec for supervisors. `:id` (default `{Snex.Pool, name}`) and `:restart` (default
  `:permanent`) may be given among the options.
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    {id, opts} = Keyword.pop(opts, :id)
    {restart, opts} = Keyword.pop(opts, :restart, :permanent)
    %Options{name: name} = Options.validate!(opts)

    %{
      id: id || {__MODULE__, name},
      start: {__MODULE__, :start_link, [opts]},
      restart: restart,
      shutdown: 10_000,
      type: :worker
    }
  end

  @doc "The pids of the pool's active members on this node (retiring ones excluded)."
  @spec members(GenServer.server()) :: [pid()]
  def members(pool), do: GenServer.call(pool, :members)

  @doc "Stops the pool and its members."
  @spec stop(GenServer.server(), term(), timeout()) :: :ok
  def stop(pool, reason \\ :normal, timeout \\ :infinity),
    do: GenServer.stop(pool, reason, timeout)
end
