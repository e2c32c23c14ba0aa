defmodule Snex.TransportTest do
  # The transport options of Snex.Interpreter: wrap_exec, :use_stdio, the busy limits and
  # parallelism (the pipes' sizes: Snex.PipeCapacityTest, below).
  use ExUnit.Case, async: true

  alias Snex.Error
  alias Snex.Test.OSProcess

  @high 10_000
  @small_limits {1_000, @high}

  describe "wrap_exec" do
    test "through /usr/bin/env as {m, f, a}" do
      {:ok, i} =
        start_supervised(
          {Snex.Interpreter, wrap_exec: {Snex.Test.Wrappers, :env, [%{"FOO" => "bar"}]}}
        )

      assert {:ok, ["bar", pid]} =
               Snex.pyeval(i, "import os\nreturn [os.environ['FOO'], os.getpid()]")

      # env execs Python, so the wrapper's pid is Python's.
      assert Snex.Interpreter.os_pid(i) == pid
    end

    test "through /usr/bin/env as a 2-arity fun" do
      wrap = fn python, args -> {"/usr/bin/env", ["SNEX_WRAPPED=fun", python | args]} end
      {:ok, i} = start_supervised({Snex.Interpreter, wrap_exec: wrap})
      assert {:ok, "fun"} = Snex.pyeval(i, "import os\nreturn os.environ['SNEX_WRAPPED']")
    end

    test "through bash -c: os_pid is the wrapper's" do
      # Not the last command of the script, so bash forks Python instead of exec'ing it.
      wrap = fn python, args -> {"bash", ["-c", ~S("$0" "$@"; exit $?), python | args]} end
      {:ok, i} = start_supervised({Snex.Interpreter, wrap_exec: wrap})
      os_pid = Snex.Interpreter.os_pid(i)

      assert {:ok, [python_pid, ^os_pid]} =
               Snex.pyeval(i, "import os\nreturn [os.getpid(), os.getppid()]")

      assert python_pid != os_pid
      :ok = stop_supervised(Snex.Interpreter)
      assert OSProcess.wait_gone(python_pid, 5_000)
      assert OSProcess.wait_gone(os_pid, 5_000)
    end

    test "a wrapper running a missing command: start_link returns interpreter_exited 127" do
      Process.flag(:trap_exit, true)
      wrap = fn _python, _args -> {"bash", ["-c", "snex-no-such-command 2>/dev/null"]} end

      assert {:error, %Error{code: :interpreter_exited, reason: {:exit_status, 127}}} =
               Snex.Interpreter.start_link(wrap_exec: wrap)
    end
  end

  describe ":use_stdio" do
    test "through a wrapper: the protocol runs on stdio, stdin and stdout are None" do
      # Python's stderr goes to /dev/null, so that what is written to fd 1 does not show.
      wrap = fn python, args ->
        {"bash", ["-c", ~S(exec "$0" "$@" 2>/dev/null), python | args]}
      end

      {:ok, i} = start_supervised({Snex.Interpreter, port_opts: [:use_stdio], wrap_exec: wrap})

      assert {:ok, [true, true, "1"]} =
               Snex.pyeval(
                 i,
                 "import os, sys\nreturn [sys.stdin is None, sys.stdout is None, os.environ['SNEX_USE_STDIO']]"
               )

      # Nothing written to stdout, at any level, reaches the transport.
      assert {:ok, 42} =
               Snex.pyeval(i, """
               import os, subprocess, sys
               print("print to stdout")
               os.write(1, b"raw bytes on fd 1\\n")
               sys.__stdout__.write("through sys.__stdout__\\n")
               sys.__stdout__.flush()
               subprocess.run(["echo", "from a child process"], check=True)
               return 42
               """)

      assert {:ok, env} = Snex.make_env(i, %{"x" => String.duplicate("y", 200_000)})
      assert {:ok, 200_000} = Snex.pyeval(env, "return len(x)")
    end

    test "without a wrapper" do
      {:ok, i} = start_supervised({Snex.Interpreter, port_opts: [:use_stdio]})
      assert {:ok, true} = Snex.pyeval(i, "import sys\nreturn sys.stdout is None")
      assert Snex.Interpreter.os_pid(i) > 0
    end
  end

  describe "busy_limits_port" do
    for msgq <- [:disabled, @small_limits] do
      test "a caller finding more than high queued waits until Python drains (msgq: #{inspect(msgq)})" do
        i =
          start_interpreter(
            busy_limits_port: @small_limits,
            busy_limits_msgq: unquote(Macro.escape(msgq))
          )

        {blocker, release} = block_python(i)

        # Python reads nothing now: most of this stays queued, far over the high watermark.
        big = start_call(i, "return len(data)", %{"data" => payload(300_000)})
        assert in_function?(big, :await)
        assert stats(i).port_queued > @high

        small = start_call(i, "return 3")
        assert in_function?(small, :wait_writable)
        refute Task.yield(small, 100)

        # Its timeout still applies while it waits.
        assert {:error, %Error{code: :response_timeout}} =
                 Snex.pyeval(i, "return 4", timeout: 100)

        release.()
        assert {:ok, "released"} = Task.await(blocker, 10_000)
        assert {:ok, 300_000} = Task.await(big, 10_000)
        assert {:ok, 3} = Task.await(small, 10_000)
        assert stats(i).port_queued == 0
        # The caller that timed out while suspended is not woken later.
        refute_receive :snex_writable, 200
      end
    end

    test ":disabled never suspends a caller" do
      i = start_interpreter(busy_limits_port: :disabled)
      {blocker, release} = block_python(i)

      # More than the 1 MiB the pipe holds without a port limit.
      big = start_call(i, "return len(data)", %{"data" => payload(3_000_000)})
      assert in_function?(big, :await)
      assert stats(i).port_queued > @high

      # While Python is still blocked, the next caller has submitted and waits for its reply.
      small = start_call(i, "return 3")
      assert in_function?(small, :await)

      release.()
      assert {:ok, "released"} = Task.await(blocker, 10_000)
      assert {:ok, 3_000_000} = Task.await(big, 10_000)
      assert {:ok, 3} = Task.await(small, 10_000)
    end

    test "a message far larger than high goes through" do
      i = start_interpreter(busy_limits_port: @small_limits)
      big = payload(3_000_000)

      assert {:ok, 3_000_000} =
               Snex.pyeval(i, "return len(data)", %{"data" => big},
                 encoding_opts: [binary_as: :bytes]
               )

      assert {:ok, env} = Snex.make_env(i, %{"data" => big}, encoding_opts: [binary_as: :bytes])
      assert {:ok, ^big} = Snex.pyeval(env, "return data")
    end

    test "the high watermark is Python's read limit" do
      i = start_interpreter(busy_limits_port: @small_limits)
      assert {:ok, "10000"} = Snex.pyeval(i, "import os\nreturn os.environ['SNEX_READ_LIMIT']")

      i = start_interpreter(busy_limits_port: :disabled)
      assert {:ok, nil} = Snex.pyeval(i, "import os\nreturn os.environ.get('SNEX_READ_LIMIT')")

      i = start_interpreter([])
      assert {:ok, "8388608"} = Snex.pyeval(i, "import os\nreturn os.environ['SNEX_READ_LIMIT']")
    end
  end

  describe "busy_limits_msgq" do
    test "a caller finding more than high not yet taken by the writer waits" do
      i = start_interpreter(busy_limits_port: :disabled, busy_limits_msgq: @small_limits)
      filled = fill_msgq(i)

      small = start_call(i, "return 3")
      assert in_function?(small, :wait_writable)
      refute Task.yield(small, 100)

      drain_msgq(filled)
      assert {:ok, 3} = Task.await(small, 10_000)
      assert %{msgq_queued: 0, port_queued: 0} = stats(i)
    end

    test ":disabled (the default) never suspends a caller" do
      i = start_interpreter(busy_limits_port: :disabled)
      filled = fill_msgq(i)

      small = start_call(i, "return 3")
      assert in_function?(small, :await)

      drain_msgq(filled)
      assert {:ok, 3} = Task.await(small, 10_000)
    end
  end

  describe "parallelism" do
    test "false: concurrent callers are served one at a time, and all get their replies" do
      i = start_interpreter(parallelism: false)
      run_concurrent_callers(i)
      # Never more than one caller encoding and queueing at once.
      assert stats(i).max_concurrent_submits == 1
    end

    test "true: the same load has callers submitting at the same time" do
      i = start_interpreter(parallelism: true)

      # The control for the test above: this load does overlap when nothing serialises it.
      assert Enum.reduce_while(1..5, false, fn _, _ ->
               run_concurrent_callers(i)
               if stats(i).max_concurrent_submits > 1, do: {:halt, true}, else: {:cont, false}
             end)
    end
  end

  describe "direct writes" do
    test "small requests to an idle interpreter are written by the caller itself" do
      i = start_interpreter([])
      {:ok, env} = Snex.make_env(i)
      before = stats(i).direct_writes

      for n <- 1..50, do: assert({:ok, ^n} = Snex.pyeval(env, "return n", %{"n" => n}))

      assert stats(i).direct_writes - before >= 50
      assert %{port_queued: 0, msgq_queued: 0} = stats(i)
    end

    test "requests over 64 KiB go through the writer thread" do
      i = start_interpreter([])
      {:ok, env} = Snex.make_env(i)
      before = stats(i).direct_writes
      data = payload(100_000)

      for _ <- 1..10 do
        assert {:ok, 100_000} = Snex.pyeval(env, "return len(data)", %{"data" => data})
      end

      assert stats(i).direct_writes == before
      assert %{port_queued: 0, msgq_queued: 0} = stats(i)
    end

    test "a request the pipe takes only in part is finished by the writer thread" do
      # A high watermark of 500 000 keeps the pipe at 64 KiB (an eighth of it is less).
      i = start_interpreter(busy_limits_port: {100_000, 500_000})
      {blocker, release} = block_python(i)
      before = stats(i)

      # Python reads nothing now: the first fills most of the pipe, the next ones do not fit.
      calls = for _ <- 1..4, do: start_call(i, "return len(data)", %{"data" => payload(60_000)})

      assert OSProcess.eventually(fn ->
               stats(i).direct_partial_writes > before.direct_partial_writes
             end)

      assert stats(i).port_queued > 0
      # The callers did not wait for the pipe: they all wait for their replies.
      for call <- calls, do: assert(in_function?(call, :await))

      release.()
      assert {:ok, "released"} = Task.await(blocker, 10_000)
      for call <- calls, do: assert({:ok, 60_000} = Task.await(call, 10_000))
      assert OSProcess.eventually(fn -> match?(%{port_queued: 0, msgq_queued: 0}, stats(i)) end)
    end

    for parallelism <- [true, false] do
      test "one caller's pipelined requests arrive in order while others flood large payloads (parallelism: #{parallelism})" do
        i = start_interpreter(parallelism: unquote(parallelism))

        {:ok, env} = Snex.make_env(i)

        {:ok, nil} =
          Snex.pyeval(env, """
          state = {"next": 0, "errors": []}
          def take(n):
              if n != state["next"]:
                  state["errors"].append((n, state["next"]))
              state["next"] = n + 1
          """)

        flooders =
          for f <- 1..2 do
            Task.async(fn ->
              for k <- 1..15 do
                size = 100_000 * f + 50_000 * k

                {:ok, ^size} =
                  Snex.pyeval(i, "return len(data)", %{"data" => payload(size)},
                    encoding_opts: [binary_as: :bytes],
                    timeout: 20_000
                  )
              end
            end)
          end

        # Submitted without waiting for the replies: small frames (direct when the pipe is
        # idle), some near the direct limit, some over it.
        count = 600
        pads = [0, 0, 0, 30_000, 0, 70_000, 0, 60_000, 10, 0]
        tag = make_ref()
        {:local, _pid, res, env_id} = Snex.Target.resolve(env)

        for n <- 0..(count - 1) do
          vars = %{"n" => n, "pad" => payload(Enum.at(pads, rem(n, length(pads))))}
          {:ok, _id} = submit_now(res, env_id, tag, "take(n)", vars)
        end

        for _ <- 1..count do
          assert_receive {^tag, outcome, body}, 20_000
          assert Snex.Request.to_result(outcome, body) == {:ok, nil}
        end

        Task.await_many(flooders, 30_000)

        assert {:ok, %{"next" => ^count, "errors" => []}} = Snex.pyeval(env, "return state")
        assert OSProcess.eventually(fn -> match?(%{port_queued: 0, msgq_queued: 0}, stats(i)) end)
        assert stats(i).direct_writes > 0
      end
    end
  end

  describe "invalid values raise ArgumentError" do
    for opts <- [
          [port_opts: :use_stdio],
          [port_opts: [:stdio]],
          [port_opts: [parallelism: :yes]],
          [port_opts: [parallelism: nil]],
          [port_opts: [busy_limits_port: {10, 5}]],
          [port_opts: [busy_limits_port: {-1, 5}]],
          [port_opts: [busy_limits_port: 5]],
          [port_opts: [busy_limits_port: {1.0, 5}]],
          [port_opts: [busy_limits_port: :off]],
          [port_opts: [busy_limits_msgq: {10, 5}]],
          [port_opts: [busy_limits_msgq: {1, 2, 3}]],
          [port_opts: [busy_limits_msgq: nil]],
          [wrap_exec: "bash"],
          [wrap_exec: {Snex.Test.Wrappers, :env}],
          [wrap_exec: {"Snex.Test.Wrappers", :env, []}],
          [wrap_exec: &Function.identity/1]
        ] do
      test "#{inspect(opts)}" do
        assert_raise ArgumentError, fn ->
          Snex.Interpreter.start_link(unquote(Macro.escape(opts)))
        end
      end
    end
  end

  ## Helpers

  defp start_interpreter(port_opts) do
    id = {:interpreter, System.unique_integer()}
    {:ok, i} = start_supervised({Snex.Interpreter, port_opts: port_opts, id: id})
    i
  end

  defp stats(i), do: Snex.Native.stats(Snex.Interpreter.resource(i))

  # Blocks Python; the writer takes a large request (larger than the 1 MiB pipe) and stays
  # blocked writing it into the full pipe, so the next request stays in the writer's queue,
  # over the high watermark.
  defp fill_msgq(i) do
    {blocker, release} = block_python(i)

    big = start_call(i, "return len(data)", %{"data" => payload(3_000_000)})
    assert in_function?(big, :await)
    assert OSProcess.eventually(fn -> stats(i).msgq_queued == 0 end)

    queued = start_call(i, "return len(data)", %{"data" => payload(20_000)})
    assert in_function?(queued, :await)
    assert stats(i).msgq_queued > @high

    {blocker, release, big, queued}
  end

  # Lets Python go on: the calls of `fill_msgq/1` get their replies.
  defp drain_msgq({blocker, release, big, queued}) do
    release.()
    assert {:ok, "released"} = Task.await(blocker, 10_000)
    assert {:ok, 3_000_000} = Task.await(big, 10_000)
    assert {:ok, 20_000} = Task.await(queued, 10_000)
  end

  defp payload(size), do: :binary.copy("x", size)

  defp start_call(i, code, vars \\ %{}) do
    Task.async(fn ->
      Snex.pyeval(i, code, vars, encoding_opts: [binary_as: :bytes], timeout: 20_000)
    end)
  end

  # Submits an EVAL through the NIF without waiting for its reply, which comes as
  # `{tag, reply}`; waits only while the interpreter is busy.
  defp submit_now(res, env_id, tag, code, vars) do
    request = %Snex.Request{
      kind: :eval,
      interpreter: self(),
      resource: res,
      args: [env_id, code, "<test>", 1, 0, nil],
      value: vars,
      deadline: Snex.Request.deadline(20_000),
      tag: tag
    }

    {:ok, id, nil} = Snex.Request.submit(request)
    {:ok, id}
  end

  # Blocks Python's event loop in synchronous code, so that it reads nothing more, until the
  # returned function is called.
  defp block_python(i) do
    marker = Path.join(System.tmp_dir!(), "snex-release-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm(marker) end)
    me = self()

    blocker =
      start_call(
        i,
        """
        import os, time
        await snex.send(me, snex.Atom("blocked"))
        while not os.path.exists(marker):
            time.sleep(0.005)
        return "released"
        """,
        %{"me" => me, "marker" => marker}
      )

    assert_receive :blocked, 5_000
    {blocker, fn -> File.write!(marker, "") end}
  end

  # Whether the task's process gets to wait in `Snex.Request`'s function `name`.
  defp in_function?(%Task{pid: pid}, name) do
    OSProcess.eventually(fn ->
      match?({:current_function, {Snex.Request, ^name, _}}, Process.info(pid, :current_function))
    end)
  end

  # 50 callers at once, with payloads some of which need a dirty scheduler, through pyeval,
  # make_env and calls back into Elixir.
  defp run_concurrent_callers(i) do
    1..50
    |> Enum.map(fn n ->
      xs = Enum.to_list(1..(1_000 * rem(n, 7) + 500 * n))
      expected = Enum.sum(xs)

      Task.async(fn ->
        case rem(n, 3) do
          0 ->
            {:ok, ^expected} = Snex.pyeval(i, "return sum(xs)", %{"xs" => xs})

          1 ->
            {:ok, env} = Snex.make_env(i, %{"xs" => xs})
            {:ok, ^expected} = Snex.pyeval(env, "return sum(xs)")

          2 ->
            {:ok, ^expected} =
              Snex.pyeval(i, "return sum(await Elixir.Enum.reverse(xs))", %{"xs" => xs})
        end

        :ok
      end)
    end)
    |> Task.await_many(30_000)
  end
end

defmodule Snex.PipeCapacityTest do
  # The sizes of an interpreter's pipes. One test starts a peer node, so distribution is
  # started: not async.
  use ExUnit.Case, async: false

  alias Snex.Test.Cluster

  @pipe_sizes "import fcntl\nreturn [fcntl.fcntl(fd, 1032) for fd in (3, 4)]"

  test "the pipe to Python holds at most an eighth of busy_limits_port's high watermark" do
    # The busy limit sees what the pipe has not accepted: with a small high watermark (10 000
    # bytes) the pipe keeps its default 64 KiB. (From Python it may grow, budget permitting.)
    {:ok, i} =
      start_supervised({Snex.Interpreter, port_opts: [busy_limits_port: {1_000, 10_000}]})

    assert {:ok, [65_536, from_python]} = Snex.pyeval(i, @pipe_sizes)
    assert from_python in [65_536, 1_048_576]
  end

  test "pipes grow to 1 MiB within a budget of 16 MiB per OS process, given back on exit" do
    {peer, node} = Cluster.start_peer(:"snex_pipes_#{System.unique_integer([:positive])}")
    on_exit(fn -> catch_exit(:peer.stop(peer)) end)

    sizes = fn i -> :erpc.call(node, Snex, :pyeval, [i, @pipe_sizes]) end

    interpreters =
      for _ <- 1..10 do
        {:ok, i} = :erpc.call(node, Cluster, :start_interpreter, [[]])
        i
      end

    all = Enum.map(interpreters, &sizes.(&1))
    # Each takes 2 x (1 MiB - 64 KiB) of the budget: eight get both pipes grown.
    assert Enum.take(all, 8) == List.duplicate({:ok, [1_048_576, 1_048_576]}, 8)
    assert {:ok, [65_536, 65_536]} in Enum.drop(all, 8)

    # Envs still held there keep their interpreters' native state, not their pipes' budget.
    for i <- interpreters,
        do: {:ok, _, _} = :erpc.call(node, Cluster, :hold_env, [i, %{}])

    for i <- interpreters, do: :ok = :erpc.call(node, GenServer, :stop, [i])

    # The budget comes back once each Python has been reaped, a moment after its stop.
    assert Snex.Test.OSProcess.eventually(fn ->
             {:ok, i} = :erpc.call(node, Cluster, :start_interpreter, [[]])
             got = sizes.(i)
             :ok = :erpc.call(node, GenServer, :stop, [i])
             got == {:ok, [1_048_576, 1_048_576]}
           end)
  end
end
