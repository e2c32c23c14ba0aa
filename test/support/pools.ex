defmodule Snex.Test.Pools do
  @moduledoc false
  # Helpers for tests of `Snex.Pool`: a pool named after its test, the OS pids behind a pool,
  # and requests that hold a member busy. Call them from the test process.
  import ExUnit.Assertions

  # Tells the test which member runs it, then waits (asynchronously) until `release` exists,
  # or forever if it is None; returns the member's OS pid.
  @hold """
  import asyncio, os
  await snex.send(me, ('started', os.getpid()))
  if release is None:
      await asyncio.sleep(3600)
  while not os.path.exists(release):
      await asyncio.sleep(0.02)
  return os.getpid()
  """

  @doc "Starts a pool with `opts`, supervised by the test and named after it; returns the name."
  @spec start_pool(map(), keyword()) :: atom()
  def start_pool(context, opts) do
    name = :"#{inspect(context.module)}.#{context.test}"
    ExUnit.Callbacks.start_supervised!({Snex.Pool, Keyword.put(opts, :name, name)})
    name
  end

  @doc "The OS pid of the Python that serves a call on `target` (a pool, or an interpreter)."
  @spec os_pid(term()) :: pos_integer()
  def os_pid(target) do
    {:ok, pid} = Snex.pyeval(target, "import os\nreturn os.getpid()")
    pid
  end

  @doc "The OS pids of the members of `pool`."
  @spec member_os_pids(atom()) :: [pos_integer()]
  def member_os_pids(pool), do: Enum.map(Snex.Pool.members(pool), &Snex.Interpreter.os_pid/1)

  @doc """
  Starts a request on `target` that holds a member until `release/1` is called on `release`
  (a path from `release_file/0`), or until the caller dies if `release` is `nil` (a caller on
  another node does not cancel its requests by dying: give it a release file). Returns the
  task and the member's OS pid; the task's result is `{:ok, os_pid}` once released.
  """
  @spec hold(term(), Path.t() | nil) :: {Task.t(), pos_integer()}
  def hold(target, release \\ nil) do
    me = self()
    vars = %{"me" => me, "release" => release}
    task = Task.async(fn -> Snex.pyeval(target, @hold, vars, timeout: :infinity) end)
    assert_receive {"started", os_pid}, 10_000
    {task, os_pid}
  end

  @doc "A path for `hold/2` that does not exist yet; removed when the test ends."
  @spec release_file() :: Path.t()
  def release_file do
    path = Path.join(System.tmp_dir!(), "snex-pool-#{System.unique_integer([:positive])}")
    ExUnit.Callbacks.on_exit(fn -> File.rm(path) end)
    path
  end

  @doc "Lets the requests held on `release` (see `hold/2`) return."
  @spec release(Path.t()) :: :ok
  def release(release), do: File.write!(release, "")
end
