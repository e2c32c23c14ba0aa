defmodule Snex.CaptureOutputTest do
  # `capture_output`: what a request's code prints goes to the calling process's group leader.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  setup_all do
    {:ok, plain} = start_supervised({Snex.Interpreter, []}, id: :plain)
    {:ok, capturing} = start_supervised({Snex.Interpreter, capture_output: true}, id: :capturing)
    {:ok, plain: plain, capturing: capturing}
  end

  test "per call: print and sys.stderr go to the caller's group leader", %{plain: i} do
    output =
      capture_io(fn ->
        code = "import sys\nprint('hello', 42)\nsys.stderr.write('to stderr\\n')\nreturn 1"
        assert {:ok, 1} = Snex.pyeval(i, code, %{}, capture_output: true)
      end)

    assert output == "hello 42\nto stderr\n"
  end

  test "from async code and the tasks it starts", %{plain: i} do
    code = """
    import asyncio
    async def child():
        print('from a task')
    await asyncio.sleep(0)
    print('after await')
    await asyncio.gather(child())
    """

    output = capture_io(fn -> assert {:ok, nil} = Snex.pyeval(i, code, capture_output: true) end)
    assert output == "after await\nfrom a task\n"
  end

  test "the interpreter's default, overridden per call", %{capturing: i} do
    assert capture_io(fn -> Snex.pyeval(i, "print('default on')") end) == "default on\n"

    assert capture_io(fn -> Snex.pyeval(i, "print('off')", capture_output: false) end) == ""
  end

  test "without capture nothing reaches the caller", %{plain: i} do
    assert capture_io(fn -> Snex.pyeval(i, "print('not captured')") end) == ""
  end

  test "concurrent callers each get their own output", %{capturing: i} do
    tasks =
      for n <- 1..5 do
        Task.async(fn ->
          capture_io(fn ->
            code =
              "import asyncio\nfor k in range(3):\n    await asyncio.sleep(0.001)\n    print(n, k)"

            {:ok, nil} = Snex.pyeval(i, code, %{"n" => n})
          end)
        end)
      end

    for {task, n} <- Enum.zip(tasks, 1..5) do
      assert Task.await(task) == Enum.map_join(0..2, &"#{n} #{&1}\n")
    end
  end

  test "a bad value raises", %{plain: i} do
    assert_raise ArgumentError, fn -> Snex.pyeval(i, "pass", capture_output: :yes) end
    assert_raise ArgumentError, fn -> Snex.Interpreter.start_link(capture_output: 1) end
  end

  test "a bad value raises whatever the target, one that is gone or on another node too" do
    {:ok, i} = Snex.Interpreter.start_link([])
    {:ok, env} = Snex.make_env(i)
    :ok = Snex.Interpreter.stop(i)

    for target <- [
          i,
          env,
          :snex_capture_output_nobody,
          {:snex_capture_output_nobody, :"nobody@127.0.0.1"}
        ] do
      assert_raise ArgumentError, ~r/:capture_output must be a boolean/, fn ->
        Snex.pyeval(target, "pass", capture_output: :yes)
      end
    end
  end
end
