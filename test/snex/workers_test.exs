defmodule Snex.WorkersTest do
  use ExUnit.Case, async: true

  @moduletag timeout: 60_000

  setup do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(i)
    dir = Path.join(System.tmp_dir!(), "snex_workers_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)

    File.write!(Path.join(dir, "snex_worker_job.py"), """
    import asyncio
    import snex

    def work(address, me):
        snex.connect(address)
        asyncio.run(snex.send(me, (snex.Atom("from_worker"), 1)))
        return asyncio.run(snex.call("erlang", "abs", [-7]))

    def reuse_parent_link(me):
        try:
            asyncio.run(snex.send(me, 1))
        except RuntimeError as e:
            return str(e)
        return "no error"
    """)

    on_exit(fn -> File.rm_rf!(dir) end)
    {:ok, env: env, dir: dir}
  end

  for method <- ["spawn", "forkserver"] do
    test "a #{method} multiprocessing worker sends a message and gets a call result", %{
      env: env,
      dir: dir
    } do
      code = """
      import asyncio, multiprocessing, sys
      sys.path.insert(0, dir)
      import snex_worker_job
      address = await snex.listen()
      ctx = multiprocessing.get_context(method)
      with ctx.Pool(1) as pool:
          return await asyncio.get_running_loop().run_in_executor(
              None, pool.apply, snex_worker_job.work, (address, me))
      """

      assert {:ok, 7} =
               Snex.pyeval(
                 env,
                 code,
                 %{"dir" => dir, "me" => self(), "method" => unquote(method)},
                 timeout: 30_000
               )

      assert_receive {:from_worker, 1}
    end
  end

  test "a forked child reusing the interpreter's link gets a clear error", %{env: env, dir: dir} do
    code = """
    import asyncio, multiprocessing, sys
    sys.path.insert(0, dir)
    import snex_worker_job
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return await asyncio.get_running_loop().run_in_executor(
            None, pool.apply, snex_worker_job.reuse_parent_link, (me,))
    """

    assert {:ok, message} =
             Snex.pyeval(env, code, %{"dir" => dir, "me" => self()}, timeout: 30_000)

    assert message =~ "forked"
    refute_received 1
    assert {:ok, 1} = Snex.pyeval(env, "return 1")
  end
end
