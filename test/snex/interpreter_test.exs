defmodule Snex.InterpreterTest do
  use ExUnit.Case, async: true

  alias Snex.Error
  alias Snex.Test.OSProcess

  describe "options" do
    test "unknown option keys raise" do
      assert_raise ArgumentError, ~r/sync_start/, fn ->
        Snex.Interpreter.start_link(sync_start: true)
      end
    end

    test "invalid option values raise" do
      assert_raise ArgumentError, fn -> Snex.Interpreter.start_link(environment: %{a: 1}) end
      assert_raise ArgumentError, fn -> Snex.Interpreter.start_link(init_script_timeout: -1) end
      assert_raise ArgumentError, fn -> Snex.Interpreter.start_link(encoding_opts: [foo: 1]) end
    end

    test ":python as a name and as a path" do
      {:ok, i1} = start_supervised({Snex.Interpreter, python: "python3", id: :a})

      {:ok, i2} =
        start_supervised({Snex.Interpreter, python: System.find_executable("python3"), id: :b})

      assert {:ok, 3} = Snex.pyeval(i1, "import sys\nreturn sys.version_info[0]")
      assert {:ok, 3} = Snex.pyeval(i2, "import sys\nreturn sys.version_info[0]")
    end

    test "a missing python is an error from start_link" do
      Process.flag(:trap_exit, true)

      assert {:error, %Error{code: :python_not_found}} =
               Snex.Interpreter.start_link(python: "/nonexistent/python3")
    end

    test "a wrap_exec returning something else than {executable, args} raises in the caller" do
      assert_raise ArgumentError, ~r/wrap_exec must return \{executable, args\}/, fn ->
        Snex.Interpreter.start_link(wrap_exec: fn _python, _args -> "bash" end)
      end
    end

    test ":cd and :environment" do
      dir = System.tmp_dir!()

      {:ok, i} =
        start_supervised(
          {Snex.Interpreter,
           cd: dir, environment: %{"SNEX_TEST_VAR" => "hello", "PYTHONPATH" => "/x/y"}}
        )

      assert {:ok, [cwd, "hello", path]} =
               Snex.pyeval(
                 i,
                 "import os, sys\nreturn [os.getcwd(), os.environ['SNEX_TEST_VAR'], os.environ['PYTHONPATH']]"
               )

      assert Path.expand(cwd) == Path.expand(dir)
      # Extended, not replaced: snex stays importable.
      assert path =~ "/x/y"
      assert path =~ "priv/python"
    end

    test "GenServer options such as :name are passed on" do
      {:ok, pid} = start_supervised({Snex.Interpreter, name: :snex_named_test})
      assert Process.whereis(:snex_named_test) == pid
      assert {:ok, 1} = Snex.pyeval(:snex_named_test, "return 1")
    end

    test ":label is set" do
      {:ok, pid} = start_supervised({Snex.Interpreter, label: {:my, :label}})

      label =
        if function_exported?(:proc_lib, :get_label, 1),
          do: apply(:proc_lib, :get_label, [pid]),
          else: Process.info(pid, :dictionary) |> elem(1) |> Keyword.get(:"$process_label")

      assert label == {:my, :label}
    end

    test "child_spec with overridden id and restart" do
      spec = Snex.Interpreter.child_spec(id: :custom, restart: :temporary, label: :x)

      assert %{
               id: :custom,
               restart: :temporary,
               start: {Snex.Interpreter, :start_link, [[label: :x]]}
             } = spec
    end
  end

  describe "eager_polyfill?" do
    for eager? <- [true, false] do
      test "#{eager?}: synchronous and async code, cancellation on timeout" do
        {:ok, i} = start_supervised({Snex.Interpreter, eager_polyfill?: unquote(eager?)})
        {:ok, env} = Snex.make_env(i)

        assert {:ok, loop} =
                 Snex.pyeval(
                   env,
                   "import asyncio\nreturn type(asyncio.get_running_loop()).__name__"
                 )

        assert loop == if(unquote(eager?), do: "EagerEventLoop", else: "_UnixSelectorEventLoop")
        assert {:ok, 2} = Snex.pyeval(env, "return 1 + 1")
        assert {:ok, 3} = Snex.pyeval(env, "await asyncio.sleep(0)\nreturn 3")

        assert {:ok, [1, 2, 3]} =
                 Snex.pyeval(env, """
                 async def one(x):
                     await asyncio.sleep(0.001 * (3 - x))
                     return x
                 return sorted(await asyncio.gather(*(one(x) for x in [1, 2, 3])))
                 """)

        assert {:error, %Snex.Error{code: :response_timeout}} =
                 Snex.pyeval(
                   env,
                   "try:\n    await asyncio.sleep(10)\nexcept asyncio.CancelledError:\n    cancelled = True\n    raise",
                   %{"cancelled" => false},
                   timeout: 50
                 )

        # The task sees CancelledError at its next step, soon after the cancel frame.
        assert {:ok, true} =
                 Snex.pyeval(env, """
                 for _ in range(200):
                     if cancelled:
                         break
                     await asyncio.sleep(0.01)
                 return cancelled
                 """)
      end
    end
  end

  describe "init script" do
    test "runs in the root env that every env copies" do
      {:ok, i} = start_supervised({Snex.Interpreter, init_script: "import math\nbase = 40"})
      {:ok, env} = Snex.make_env(i)
      assert {:ok, 42} = Snex.pyeval(env, "return base + 2")
      assert {:ok, 3.0} = Snex.pyeval(env, "return math.sqrt(9)")
    end

    test "takes variables" do
      {:ok, i} =
        start_supervised(
          {Snex.Interpreter, init_script: {"total = a + b", %{"a" => 1, "b" => 2}}}
        )

      assert {:ok, 3} = Snex.pyeval(i, "return total")
    end

    test "accepts a Snex.Code" do
      {:ok, i} = start_supervised({Snex.Interpreter, init_script: %Snex.Code{src: "k = 9"}})
      assert {:ok, 9} = Snex.pyeval(i, "return k")
    end

    test "an exception makes start_link return python_runtime_error" do
      Process.flag(:trap_exit, true)

      assert {:error, %Error{code: :python_runtime_error, reason: "nope"}} =
               Snex.Interpreter.start_link(init_script: "raise ValueError('nope')")
    end

    test "a slow init script gives init_script_timeout" do
      Process.flag(:trap_exit, true)

      assert {:error, %Error{code: :init_script_timeout}} =
               Snex.Interpreter.start_link(
                 init_script: "import time\ntime.sleep(30)",
                 init_script_timeout: 300
               )
    end

    test "sync_start?: false returns at once and the interpreter works" do
      {:ok, i} =
        start_supervised(
          {Snex.Interpreter,
           sync_start?: false, init_script: "import time\ntime.sleep(0.3)\nready = True"}
        )

      assert {:ok, true} = Snex.pyeval(i, "return ready")
    end

    test "sync_start?: false: callers wait for the init script to finish" do
      code =
        "import asyncio\nawait snex.send(me, 'running')\nawait asyncio.sleep(0.3)\nready = True"

      {:ok, i} =
        start_supervised(
          {Snex.Interpreter, sync_start?: false, init_script: {code, %{"me" => self()}}}
        )

      # The init script is running (and awaiting); a call must not overtake it.
      assert_receive "running", 5_000
      assert {:ok, true} = Snex.pyeval(i, "return ready")
    end

    test "a call's timeout counts the wait for an interpreter still running its init script" do
      {:ok, i} =
        start_supervised(
          {Snex.Interpreter,
           sync_start?: false, init_script: "import time\ntime.sleep(4)\nready = True"}
        )

      for call <- [
            fn -> Snex.pyeval(i, "return 1", %{}, timeout: 300) end,
            fn -> Snex.make_env(i, %{}, timeout: 300) end
          ] do
        started = System.monotonic_time(:millisecond)
        assert {:error, %Error{code: :response_timeout}} = call.()
        assert System.monotonic_time(:millisecond) - started < 1_000
      end
    end

    test "the init script can call into Elixir" do
      code = "x = await Elixir.Enum.sum([1, 2, 3])\nawait snex.send(me, 'hi')"

      {:ok, i} =
        start_supervised(
          {Snex.Interpreter, init_script: {code, %{"me" => self()}}, init_script_timeout: 5_000}
        )

      assert_receive "hi"
      assert {:ok, 6} = Snex.pyeval(i, "return x")
    end

    test "sync_start?: false crashes the process on failure" do
      Process.flag(:trap_exit, true)

      {:ok, pid} =
        Snex.Interpreter.start_link(sync_start?: false, init_script: "raise ValueError('late')")

      assert_receive {:EXIT, ^pid, %Error{code: :python_runtime_error}}, 30_000
    end
  end

  describe "lifecycle" do
    test "a program that exits at once always gives its exit status from start_link" do
      # The exit may come before or after the init script is submitted: both are reported as
      # the exit, never as an internal error.
      Process.flag(:trap_exit, true)

      for _ <- 1..30 do
        assert {:error, %Error{code: :interpreter_exited, reason: {:exit_status, 1}}} =
                 Snex.Interpreter.start_link(python: "false")
      end
    end

    test "os_pid is the Python process" do
      {:ok, i} = start_supervised(Snex.Interpreter)
      os_pid = Snex.Interpreter.os_pid(i)
      assert {:ok, ^os_pid} = Snex.pyeval(i, "import os\nreturn os.getpid()")
    end

    test "stopping the interpreter leaves no Python process" do
      {:ok, i} = Snex.Interpreter.start_link()
      os_pid = Snex.Interpreter.os_pid(i)
      assert OSProcess.alive?(os_pid)
      :ok = Snex.Interpreter.stop(i)
      assert OSProcess.wait_gone(os_pid, 3_000)
    end

    test "a Python stuck in synchronous code is gone within seconds of stop" do
      {:ok, i} = Snex.Interpreter.start_link()
      os_pid = Snex.Interpreter.os_pid(i)

      code = "await snex.send(me, 'stuck')\nimport time\ntime.sleep(1000)"
      me = self()
      task = Task.async(fn -> Snex.pyeval(i, code, %{"me" => me}, timeout: :infinity) end)

      assert_receive "stuck", 5_000
      :ok = Snex.Interpreter.stop(i)
      assert {:error, %Error{code: :call_failed, reason: :normal}} = Task.await(task)
      assert OSProcess.wait_gone(os_pid, 5_000)
    end

    test "killing the interpreter process kills Python" do
      Process.flag(:trap_exit, true)
      {:ok, i} = Snex.Interpreter.start_link()
      os_pid = Snex.Interpreter.os_pid(i)
      Process.exit(i, :kill)
      assert_receive {:EXIT, ^i, :killed}
      assert OSProcess.wait_gone(os_pid, 5_000)
    end

    test "Python's child processes go with it" do
      {:ok, i} = Snex.Interpreter.start_link()

      {:ok, child} =
        Snex.pyeval(i, "import subprocess\np = subprocess.Popen(['sleep', '1000'])\nreturn p.pid")

      :ok = Snex.Interpreter.stop(i)
      assert OSProcess.wait_gone(child, 5_000)
    end

    test "SIGKILL of Python during a call: call_failed for the caller, interpreter_exited" do
      Process.flag(:trap_exit, true)
      {:ok, i} = Snex.Interpreter.start_link()
      os_pid = Snex.Interpreter.os_pid(i)

      code = "import asyncio\nawait snex.send(me, 'waiting')\nawait asyncio.sleep(100)"
      me = self()
      task = Task.async(fn -> Snex.pyeval(i, code, %{"me" => me}, timeout: :infinity) end)

      assert_receive "waiting", 5_000
      System.cmd("kill", ["-9", to_string(os_pid)])

      expected = %Error{code: :interpreter_exited, reason: {:exit_status, 137}}
      assert {:error, %Error{code: :call_failed, reason: ^expected}} = Task.await(task)
      assert_receive {:EXIT, ^i, ^expected}
    end

    test "garbage written into the transport stops the interpreter at once" do
      Process.flag(:trap_exit, true)
      {:ok, i} = Snex.Interpreter.start_link()
      os_pid = Snex.Interpreter.os_pid(i)

      # "garb" reads as a 1.7 GB length: without the kind check the reader would wait for it.
      assert {:error, %Error{code: :call_failed, reason: reason}} =
               Snex.pyeval(
                 i,
                 "import os\nos.write(4, b'garbage written by mistake')\nawait snex.call('erlang', 'abs', [1])",
                 timeout: 10_000
               )

      assert %Error{code: :interpreter_exited, reason: {:protocol_error, message}} = reason
      assert message =~ "unexpected frame kind 97"
      assert_receive {:EXIT, ^i, %Error{code: :interpreter_exited}}
      assert OSProcess.wait_gone(os_pid, 5_000)
    end

    test "a frame the reader cannot handle stops the interpreter with a protocol error" do
      Process.flag(:trap_exit, true)
      {:ok, i} = Snex.Interpreter.start_link()

      # A well-formed HELLO frame whose pid does not fit a pid.
      assert {:error, %Error{code: :call_failed, reason: reason}} =
               Snex.pyeval(
                 i,
                 """
                 import os, struct
                 os.write(4, struct.pack(">IBQ", 9, 133, 2**40))
                 await snex.call('erlang', 'abs', [1])
                 """,
                 timeout: 10_000
               )

      assert %Error{code: :interpreter_exited, reason: {:protocol_error, "bad pid in HELLO"}} =
               reason

      assert_receive {:EXIT, ^i, %Error{code: :interpreter_exited}}
    end

    test "os._exit and segfault give their exit status" do
      Process.flag(:trap_exit, true)

      for {code, status} <- [
            {"import os\nos._exit(7)", 7},
            {"import ctypes\nctypes.string_at(0)", 128 + 11}
          ] do
        {:ok, i} = Snex.Interpreter.start_link()
        expected = %Error{code: :interpreter_exited, reason: {:exit_status, status}}
        assert {:error, %Error{code: :call_failed, reason: ^expected}} = Snex.pyeval(i, code)
        assert_receive {:EXIT, ^i, ^expected}
      end
    end

    test "calls to a stopped interpreter fail with call_failed" do
      {:ok, i} = Snex.Interpreter.start_link()
      {:ok, env} = Snex.make_env(i)
      :ok = Snex.Interpreter.stop(i)
      assert {:error, %Error{code: :call_failed}} = Snex.pyeval(env, "return 1")
      assert {:error, %Error{code: :call_failed}} = Snex.pyeval(i, "return 1")
    end

    test "an interpreter under a Supervisor is restarted after Python dies" do
      {:ok, sup} =
        Supervisor.start_link([{Snex.Interpreter, name: :snex_supervised_test}],
          strategy: :one_for_one
        )

      old = Process.whereis(:snex_supervised_test)
      old_os_pid = Snex.Interpreter.os_pid(old)
      System.cmd("kill", ["-9", to_string(old_os_pid)])

      assert is_pid(OSProcess.await_restarted(:snex_supervised_test, old))
      assert {:ok, 1} = Snex.pyeval(:snex_supervised_test, "return 1")
      Supervisor.stop(sup)
    end
  end
end
