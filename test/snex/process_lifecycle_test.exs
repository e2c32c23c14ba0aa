defmodule Snex.ProcessLifecycleTest do
  # How Python is started (by snex_helper, not a fork of the BEAM), what happens when its
  # transport breaks while it runs, and what is left after the BEAM is killed.
  use ExUnit.Case, async: true

  alias Snex.Error
  alias Snex.Test.OSProcess

  describe "the process helper" do
    test "Python's parent is snex_helper, a child of the node, not a fork of the BEAM" do
      {:ok, i} = start_supervised(Snex.Interpreter)
      python = Snex.Interpreter.os_pid(i)
      helper = ppid(python)

      assert Path.basename(exe(helper)) == "snex_helper"
      assert ppid(helper) == String.to_integer(System.pid())
      # The helper leads Python's process group.
      assert pgid(python) == helper
      assert pgid(helper) == helper

      # Neither a beam.smp nor the node's command line (cookie included) per interpreter.
      cmdline = File.read!("/proc/#{helper}/cmdline")
      refute cmdline =~ "beam"
      refute cmdline =~ "setcookie"
      assert vm_rss_kb(helper) < 16_000

      for pid <- group_members(helper) do
        refute Path.basename(exe(pid)) =~ "beam"
      end
    end
  end

  describe "a broken transport ends the interpreter" do
    setup do
      Process.flag(:trap_exit, true)
      :ok
    end

    test "os.close(3): the next request finds the pipe closed, Python is killed" do
      {:ok, i} = Snex.Interpreter.start_link()
      python = Snex.Interpreter.os_pid(i)
      started = now()
      assert {:ok, nil} = Snex.pyeval(i, "import os\nos.close(3)")

      assert {:error, %Error{code: :call_failed, reason: reason}} =
               Snex.pyeval(i, "return 1", timeout: 5_000)

      assert %Error{code: :interpreter_exited, reason: {:transport_closed, message}} = reason
      assert message =~ "writing into the pipe to Python failed"
      assert_receive {:EXIT, ^i, ^reason}, 5_000
      assert OSProcess.wait_gone(python, left(started, 5_000))
    end

    test "os.close(4): the interpreter exits, pending callers get call_failed" do
      {:ok, i} = Snex.Interpreter.start_link()
      python = Snex.Interpreter.os_pid(i)
      pending = Task.async(fn -> Snex.pyeval(i, "import asyncio\nawait asyncio.sleep(100)") end)
      # Closed after this call's reply has gone out: Python itself never notices.
      assert {:ok, nil} =
               Snex.pyeval(i, "import os, threading\nthreading.Timer(0.2, os.close, [4]).start()")

      started = now()
      assert_receive {:EXIT, ^i, reason}, 5_000

      assert %Error{code: :interpreter_exited, reason: {:transport_closed, message}} = reason
      assert message =~ "end of file on the pipe from Python"
      assert {:error, %Error{code: :call_failed, reason: ^reason}} = Task.await(pending)
      assert OSProcess.wait_gone(python, left(started, 5_000))
    end

    test "dup2 over fd 3" do
      {:ok, i} = Snex.Interpreter.start_link()
      python = Snex.Interpreter.os_pid(i)
      started = now()

      assert {:ok, nil} =
               Snex.pyeval(i, "import os\nos.dup2(os.open(os.devnull, os.O_RDONLY), 3)")

      assert {:error, %Error{code: :call_failed, reason: reason}} =
               Snex.pyeval(i, "return 1", timeout: 5_000)

      assert %Error{code: :interpreter_exited, reason: {:transport_closed, _}} = reason
      assert_receive {:EXIT, ^i, ^reason}, 5_000
      assert OSProcess.wait_gone(python, left(started, 5_000))
    end

    test "dup2 over fd 4" do
      {:ok, i} = Snex.Interpreter.start_link()
      python = Snex.Interpreter.os_pid(i)

      assert {:ok, nil} =
               Snex.pyeval(i, """
               import os, threading
               null = os.open(os.devnull, os.O_WRONLY)
               threading.Timer(0.2, os.dup2, [null, 4]).start()
               """)

      started = now()
      assert_receive {:EXIT, ^i, reason}, 5_000
      assert %Error{code: :interpreter_exited, reason: {:transport_closed, _}} = reason
      assert OSProcess.wait_gone(python, left(started, 5_000))
    end

    test "a stray frame header written to fd 4: a protocol error, Python is killed at once" do
      {:ok, i} = Snex.Interpreter.start_link()
      python = Snex.Interpreter.os_pid(i)
      started = now()

      # A well-formed reply header claiming a 1 MiB body; the real reply follows it.
      assert {:error, %Error{code: :call_failed, reason: reason}} =
               Snex.pyeval(
                 i,
                 "import os, struct\nos.write(4, struct.pack('>IBQ', 9 + (1 << 20), 128, 1))\nreturn 1",
                 timeout: 5_000
               )

      assert %Error{code: :interpreter_exited, reason: {:protocol_error, message}} = reason
      assert message =~ "not a pickle"
      assert_receive {:EXIT, ^i, ^reason}, 5_000
      assert OSProcess.wait_gone(python, left(started, 5_000))
    end

    test "Python that exits soon after closing its pipe gets its exit status reported" do
      {:ok, i} = Snex.Interpreter.start_link()

      assert {:ok, nil} =
               Snex.pyeval(i, """
               import os, threading, time
               def close_then_exit():
                   time.sleep(0.2)  # after this call's reply
                   os.close(4)
                   time.sleep(0.3)
                   os._exit(5)
               threading.Thread(target=close_then_exit).start()
               """)

      assert_receive {:EXIT, ^i, %Error{code: :interpreter_exited, reason: {:exit_status, 5}}},
                     5_000
    end

    test "a supervisor restarts an interpreter whose transport broke" do
      {:ok, sup} =
        Supervisor.start_link([{Snex.Interpreter, name: :snex_lifecycle_restarted}],
          strategy: :one_for_one
        )

      old = Process.whereis(:snex_lifecycle_restarted)
      old_python = Snex.Interpreter.os_pid(old)

      assert {:ok, nil} =
               Snex.pyeval(
                 old,
                 "import os, threading\nthreading.Timer(0.1, os.close, [4]).start()"
               )

      new = OSProcess.await_restarted(:snex_lifecycle_restarted, old)
      assert is_pid(new)
      assert {:ok, 2} = Snex.pyeval(new, "return 1 + 1")
      assert OSProcess.wait_gone(old_python, 5_000)
      Supervisor.stop(sup)
    end
  end

  describe "BEAM death" do
    @tag timeout: 60_000
    test "a BEAM killed with SIGKILL leaves no process of Python's group, children included" do
      ebin = Application.app_dir(:snex, "ebin")

      script = """
      {:ok, _} = Application.ensure_all_started(:snex)
      {:ok, i} = Snex.Interpreter.start_link()
      code = "import os, subprocess\\n" <>
        "subprocess.Popen(['sleep', '1000'])\\n" <>
        "subprocess.Popen(['sh', '-c', 'sleep 1000 & sleep 1000'])\\n" <>
        "return os.getpgid(0)"
      {:ok, pgid} = Snex.pyeval(i, code)
      IO.puts("PIDS \#{System.pid()} \#{Snex.Interpreter.os_pid(i)} \#{pgid}")
      # Lives until the test kills it (or closes its stdin).
      IO.read(:stdio, :eof)
      """

      port =
        Port.open({:spawn_executable, System.find_executable("elixir")}, [
          :binary,
          :exit_status,
          {:line, 1024},
          args: ["-pa", ebin, "-e", script]
        ])

      {beam, python, pgid} = read_pids(port)
      # helper, Python, sleep, sh and its two sleeps
      assert OSProcess.eventually(fn -> length(group_members(pgid)) == 6 end, 10_000)
      assert python in group_members(pgid)

      System.cmd("kill", ["-9", beam])
      assert_receive {^port, {:exit_status, _}}, 10_000
      assert OSProcess.wait_gone(python, 5_000)
      assert OSProcess.eventually(fn -> group_members(pgid) == [] end, 3_000)
    end
  end

  defp read_pids(port) do
    receive do
      {^port, {:data, {:eol, "PIDS " <> rest}}} ->
        [beam, python, pgid] = String.split(rest)
        {beam, String.to_integer(python), String.to_integer(pgid)}

      {^port, {:data, _other}} ->
        read_pids(port)
    after
      30_000 -> flunk("the child BEAM did not start an interpreter")
    end
  end

  defp now, do: System.monotonic_time(:millisecond)
  defp left(started, total), do: max(total - (now() - started), 0)

  defp ppid(pid), do: pid |> OSProcess.stat_fields() |> Enum.at(1) |> String.to_integer()
  defp pgid(pid), do: pid |> OSProcess.stat_fields() |> Enum.at(2) |> String.to_integer()
  defp exe(pid), do: File.read_link!("/proc/#{pid}/exe")

  defp vm_rss_kb(pid) do
    [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/#{pid}/status"))
    String.to_integer(kb)
  end

  # Live (non-zombie) processes of process group `pgid`.
  defp group_members(pgid) do
    group = to_string(pgid)

    for entry <- File.ls!("/proc"),
        Regex.match?(~r/^\d+$/, entry),
        fields = OSProcess.stat_fields(entry),
        fields != nil,
        match?([state, _ppid, ^group | _] when state != "Z", fields),
        do: String.to_integer(entry)
  end
end
