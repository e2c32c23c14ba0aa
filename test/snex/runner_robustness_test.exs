defmodule Snex.RunnerRobustnessTest do
  # The Python runner never wedges: whatever raises while a request is run, encoded or replied
  # to is an error of that call, the code runs once, and the next call is served. A reply that
  # cannot be written ends the interpreter. Timeouts and callers' deaths stop synchronous code.
  use ExUnit.Case, async: true

  alias Snex.Error

  # A fresh interpreter for each test: some tests set a custom encoder, which is global.
  setup do
    {:ok, interpreter} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(interpreter, %{"runs" => []})
    %{interpreter: interpreter, env: env}
  end

  @broken_str """
  class E(Exception):
      __str__ = lambda self: 1 / 0
  """

  # name => {code raising in the reply path, expected error code, fragments of the reason}
  @triggers %{
    "an exception whose str() raises" =>
      {@broken_str <> "raise E()", :python_runtime_error,
       ["E: <exception str() failed: ZeroDivisionError: division by zero>"]},
    "a custom encoder raising AttributeError" =>
      {"snex.set_custom_encoder(lambda o: o.missing)\nreturn object()", :encode_error,
       ["AttributeError", "missing"]},
    "a list subclass whose __iter__ raises" =>
      {"class L(list):\n    def __iter__(self):\n        raise RuntimeError('no iter')\n" <>
         "return L([1])", :encode_error, ["RuntimeError: no iter"]}
  }

  describe "an exception in the reply path is an error of that call only" do
    for {name, {code, error_code, fragments}} <- @triggers,
        {variant, prefix} <- [
          {"", ""},
          {" (after an await)", "import asyncio\nawait asyncio.sleep(0)\n"}
        ] do
      @code code
      @error_code error_code
      @fragments fragments
      @prefix prefix

      test name <> variant, %{env: env} do
        assert {:error, %Error{code: @error_code, reason: reason, traceback: traceback}} =
                 Snex.pyeval(env, @prefix <> "runs.append(1)\n" <> @code, timeout: 3_000)

        for fragment <- @fragments, do: assert(reason =~ fragment)
        assert [_ | _] = traceback

        # The next call is served, and the failing code ran once.
        assert {:ok, 1} = Snex.pyeval(env, "snex.set_custom_encoder(None)\nreturn len(runs)")
        assert {:ok, 1} = Snex.pyeval(env, "return len(runs)")
      end
    end

    test "a message sent by the failing code is sent once", %{env: env} do
      me = self()

      code = """
      import asyncio
      await snex.send(me, snex.Atom("ran"))
      await asyncio.sleep(0)
      snex.set_custom_encoder(lambda o: o.missing)
      return object()
      """

      assert {:error, %Error{code: :encode_error}} =
               Snex.pyeval(env, code, %{"me" => me}, timeout: 3_000)

      assert {:ok, nil} =
               Snex.pyeval(
                 env,
                 "snex.set_custom_encoder(None)\nawait snex.send(me, snex.Atom('done'))"
               )

      # Messages from Python arrive in the order it sent them.
      assert_receive :done
      assert_received :ran
      refute_received :ran
    end

    test "the traceback of an exception whose str() raises shows the user's code", %{env: env} do
      code = @broken_str <> "def f():\n    raise E()\nf()"
      assert {:error, %Error{traceback: traceback}} = Snex.pyeval(env, code, timeout: 3_000)
      text = IO.iodata_to_binary(traceback)
      assert text =~ ~s(File "<Snex.Code>", line 4, in f)
    end
  end

  test "a reply that cannot be written ends the interpreter with exit status 74" do
    Process.flag(:trap_exit, true)
    {:ok, i} = Snex.Interpreter.start_link()

    # fd 4 becomes a read-only file (the pipe stays open through `keep`): writing fails.
    code = """
    import os
    keep = os.dup(4)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 4)
    return 1
    """

    expected = %Error{code: :interpreter_exited, reason: {:exit_status, 74}}
    assert {:error, %Error{code: :call_failed, reason: ^expected}} = Snex.pyeval(i, code)
    assert_receive {:EXIT, ^i, ^expected}
  end

  test "SIGUSR2 while nothing runs is harmless", %{interpreter: i, env: env} do
    os_pid = Snex.Interpreter.os_pid(i)
    {_, 0} = System.cmd("kill", ["-USR2", to_string(os_pid)])
    {_, 0} = System.cmd("kill", ["-USR2", to_string(os_pid)])
    assert {:ok, 2} = Snex.pyeval(env, "return 1 + 1")
    assert Snex.Interpreter.os_pid(i) == os_pid
  end

  # These need the NIF to send SIGUSR2 to Python with each CANCEL (docs/protocol.md).
  describe "a timeout stops synchronous code" do
    for {name, code} <- [
          {"time.sleep(20)", "import time\ntime.sleep(20)"},
          {"while True: pass", "while True:\n    pass"},
          {"a synchronous stretch of async code",
           "import asyncio, time\nawait asyncio.sleep(0)\ntime.sleep(20)"}
        ] do
      @code code

      test name, %{interpreter: i, env: env} do
        os_pid = Snex.Interpreter.os_pid(i)
        assert {:error, %Error{code: :response_timeout}} = Snex.pyeval(env, @code, timeout: 300)
        timed_out = System.monotonic_time(:millisecond)
        assert {:ok, 1} = Snex.pyeval(env, "return 1", timeout: 5_000)
        assert System.monotonic_time(:millisecond) - timed_out < 1_000
        assert Snex.Interpreter.os_pid(i) == os_pid
      end
    end

    test "the code sees CancelledError and does not run to its end", %{env: env} do
      code = """
      import time
      try:
          time.sleep(20)
          runs.append("finished")
      except BaseException as e:
          runs.append(type(e).__name__)
          raise
      """

      assert {:error, %Error{code: :response_timeout}} = Snex.pyeval(env, code, timeout: 300)
      assert {:ok, ["CancelledError"]} = Snex.pyeval(env, "return runs", timeout: 1_000)
    end

    test "a caller that dies has its synchronous code stopped", %{env: env} do
      me = self()

      code = """
      import time
      await snex.send(me, snex.Atom("sleeping"))
      time.sleep(20)
      """

      {pid, ref} =
        spawn_monitor(fn -> Snex.pyeval(env, code, %{"me" => me}, timeout: :infinity) end)

      assert_receive :sleeping, 5_000
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
      died = System.monotonic_time(:millisecond)
      assert {:ok, 1} = Snex.pyeval(env, "return 1", timeout: 5_000)
      assert System.monotonic_time(:millisecond) - died < 1_000
    end
  end
end
