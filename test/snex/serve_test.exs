defmodule Snex.ServeTest do
  # Other Python processes joining Snex over a stream connected to the interpreter:
  # `snex.serve`, `snex.serve_forever` and `snex.io_loop_for_connection`.
  use ExUnit.Case, async: true

  alias Snex.Error

  @moduletag timeout: 60_000

  setup do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(i)
    dir = Path.join(System.tmp_dir!(), "snex_serve_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)

    File.write!(Path.join(dir, "snex_serve_job.py"), """
    import asyncio, os
    import snex

    async def _with_serve(path, me):
        reader, writer = await asyncio.open_unix_connection(path)
        async with snex.serve(reader, writer):
            await snex.send(me, (snex.Atom("worker_pid"), os.getpid()))
            pid = await snex.call("erlang", "abs", [os.getpid()])
            # From another thread of the worker, on that thread's own loop.
            from_thread = await asyncio.get_running_loop().run_in_executor(
                None, lambda: asyncio.run(snex.call("erlang", "abs", [-5])))
            try:
                async with snex.serve(reader, writer):
                    twice = "no error"
            except RuntimeError as e:
                twice = str(e)
        writer.close()
        try:
            await snex.send(me, "after the block")
            after = "no error"
        except RuntimeError:
            after = "RuntimeError"
        return [pid, from_thread, twice, after]

    def with_serve(path, me):
        return asyncio.run(_with_serve(path, me))

    async def _with_serve_forever(path, me):
        reader, writer = await asyncio.open_unix_connection(path)
        later = []
        async def after_ready():
            n = await snex.call("erlang", "abs", [-4])
            await snex.send(me, (snex.Atom("after_ready"), n))
        async def ready():
            n = await snex.call("erlang", "abs", [-3])
            await snex.send(me, (snex.Atom("ready"), n, os.getpid()))
            # Its first step runs on a later turn of the loop: once ready() has returned.
            later.append(asyncio.get_running_loop().create_task(after_ready()))
        await snex.serve_forever(reader, writer, on_ready=ready)
        writer.close()
        return "eof"

    def with_serve_forever(path, me):
        return asyncio.run(_with_serve_forever(path, me))
    """)

    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, interpreter: i, env: env, dir: dir}
  end

  # In the interpreter: serves a Unix socket, starts a forkserver worker running
  # `with_serve_forever`, waits (in Elixir's `wait`) until the test says go, then closes the
  # worker's connection and returns what the worker's serve_forever returned.
  @serve_forever_code """
  import asyncio, multiprocessing, os, sys, tempfile
  sys.path.insert(0, dir)
  import snex_serve_job
  path = os.path.join(tempfile.mkdtemp(prefix="snex-"), "s.sock")
  writers = []
  async def on_connection(reader, writer):
      writers.append(writer)
      await snex.io_loop_for_connection(reader, writer)
  server = await asyncio.start_unix_server(on_connection, path=path)
  with multiprocessing.get_context("forkserver").Pool(1) as pool:
      result = pool.apply_async(snex_serve_job.with_serve_forever, (path, me))
      await snex.call("erlang", "apply", [wait, []])
      for w in writers:
          w.close()
      value = await asyncio.get_running_loop().run_in_executor(None, result.get, 20)
  server.close()
  return value
  """

  # Runs `job(path, me)` in a multiprocessing worker of `method`, with a Unix server of
  # `snex.io_loop_for_connection` at `path` in the interpreter.
  defp run_worker(env, dir, job, method) do
    code = """
    import asyncio, multiprocessing, os, sys, tempfile
    sys.path.insert(0, dir)
    import snex_serve_job
    path = os.path.join(tempfile.mkdtemp(prefix="snex-"), "s.sock")
    server = await asyncio.start_unix_server(snex.io_loop_for_connection, path=path)
    try:
        with multiprocessing.get_context(method).Pool(1) as pool:
            return await asyncio.get_running_loop().run_in_executor(
                None, pool.apply, getattr(snex_serve_job, job), (path, me))
    finally:
        server.close()
    """

    Snex.pyeval(env, code, %{"dir" => dir, "me" => self(), "job" => job, "method" => method},
      timeout: 30_000
    )
  end

  test "a forkserver worker calls back into Elixir with `async with snex.serve`", %{
    interpreter: i,
    env: env,
    dir: dir
  } do
    assert {:ok, [pid, 5, "Snex is already running!", "RuntimeError"]} =
             run_worker(env, dir, "with_serve", "forkserver")

    assert_receive {:worker_pid, ^pid}
    assert pid != Snex.Interpreter.os_pid(i)
    refute_received "after the block"
  end

  test "serve_forever runs on_ready, then serves until EOF", %{env: env, dir: dir} do
    test = self()

    # Python's interpreter waits in this call until the test lets it close the connection.
    wait_for_go = fn ->
      send(test, {:waiting, self()})

      receive do
        :go -> :ok
      end
    end

    task =
      Task.async(fn ->
        Snex.pyeval(
          env,
          @serve_forever_code,
          %{"dir" => dir, "me" => test, "wait" => wait_for_go},
          timeout: 30_000
        )
      end)

    assert_receive {:ready, 3, worker_pid}, 20_000
    assert is_integer(worker_pid)
    # Still serving after on_ready returned: a call from the worker's loop works.
    assert_receive {:after_ready, 4}, 20_000
    assert_receive {:waiting, waiter}, 20_000
    send(waiter, :go)
    assert {:ok, "eof"} = Task.await(task, 30_000)
  end

  test "the interpreter itself cannot serve: Snex is already running", %{env: env} do
    code = """
    import asyncio
    r, w = await asyncio.open_connection(sock=__import__("socket").socketpair()[0])
    async with snex.serve(r, w):
        pass
    """

    assert {:error, %Error{code: :python_runtime_error, reason: "Snex is already running!"}} =
             Snex.pyeval(env, code)

    assert {:error, %Error{reason: "Snex is already running!"}} =
             Snex.pyeval(
               env,
               "import asyncio, socket\n" <>
                 "r, w = await asyncio.open_connection(sock=socket.socketpair()[0])\n" <>
                 "await snex.serve_forever(r, w)"
             )
  end
end
