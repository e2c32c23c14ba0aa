defmodule Snex.StreamTest do
  use Snex.InterpreterCase, async: true

  alias Snex.Error
  alias Snex.Test.OSProcess

  # An env holding shared counters: a stream's env is a shallow copy, so the generator sees
  # the same list objects and tests can read them afterwards.
  defp counters_env(i) do
    {:ok, env} = Snex.make_env(i)
    {:ok, nil} = Snex.pyeval(env, "produced = [0]\nclosed = [False]")
    env
  end

  defp state(env), do: Snex.pyeval(env, "return [produced[0], closed[0]]")

  @gen """
  def gen():
      try:
          for i in range(10**6):
              produced[0] += 1
              yield i
      finally:
          closed[0] = True
  return gen()
  """

  test "items of a generator, lazily, in batches", %{interpreter: i} do
    env = counters_env(i)
    stream = Snex.stream(env, @gen, %{}, batch_size: 100)
    # Nothing runs before the stream is consumed.
    assert {:ok, [0, false]} = state(env)

    assert Enum.take(stream, 5) == [0, 1, 2, 3, 4]
    {:ok, [produced, closed]} = state(env)
    assert produced <= 5 + 100
    assert closed
  end

  test "a whole iterable, with vars", %{interpreter: i} do
    assert Snex.stream(i, "return iter(range(n))", %{"n" => 1234}) |> Enum.to_list() ==
             Enum.to_list(0..1233)

    assert Snex.stream(i, "return [1, 2, 3]") |> Enum.to_list() == [1, 2, 3]
    assert Snex.stream(i, "return ()") |> Enum.to_list() == []
  end

  test "an infinite async generator is halted cleanly", %{interpreter: i} do
    env = counters_env(i)

    code = """
    import asyncio
    async def agen():
        try:
            n = 0
            while True:
                produced[0] += 1
                await asyncio.sleep(0)
                yield n
                n += 1
        finally:
            closed[0] = True
    return agen()
    """

    assert Snex.stream(env, code, %{}, batch_size: 10)
           |> Stream.take_while(&(&1 < 25))
           |> Enum.to_list() ==
             Enum.to_list(0..24)

    assert {:ok, [produced, true]} = state(env)
    assert produced <= 26 + 10
  end

  test "an error mid-stream raises Snex.Error after the items before it", %{interpreter: i} do
    code = """
    def gen():
        yield 1
        yield 2
        raise ValueError("boom")
    return gen()
    """

    stream = Snex.stream(i, code, %{}, batch_size: 10)
    parent = self()

    error =
      assert_raise Error, fn ->
        Enum.each(stream, &send(parent, {:item, &1}))
      end

    assert_received {:item, 1}
    assert_received {:item, 2}
    assert %Error{code: :python_runtime_error, reason: "boom"} = error
    assert Enum.any?(error.traceback, &(&1 =~ "ValueError"))
  end

  test "an exception in the consumer closes the generator", %{interpreter: i} do
    env = counters_env(i)

    assert_raise RuntimeError, fn ->
      Snex.stream(env, @gen, %{}, batch_size: 10)
      |> Enum.each(fn x -> if x == 3, do: raise("stop") end)
    end

    assert {:ok, [_, true]} = state(env)
  end

  test "the consumer dying closes the generator", %{interpreter: i} do
    env = counters_env(i)
    parent = self()

    consumer =
      spawn(fn ->
        stream = Snex.stream(env, @gen, %{}, batch_size: 10)

        Enum.each(stream, fn x ->
          if x == 2, do: send(parent, :consuming)
          receive do: (:never -> :ok), after: (if(x >= 2, do: :infinity, else: 0) -> :ok)
        end)
      end)

    assert_receive :consuming, 5_000
    Process.exit(consumer, :kill)
    # The stream's env is collected with the consumer's heap: Python drops the generator.
    assert OSProcess.eventually(fn -> match?({:ok, [_, true]}, state(env)) end)
  end

  test "code that returns no iterable is an error", %{interpreter: i} do
    assert_raise Error, ~r/not an iterable/, fn ->
      Snex.stream(i, "return 42") |> Enum.to_list()
    end
  end

  test "encoding options apply to items", %{interpreter: i} do
    assert [%MapSet{}] = Snex.stream(i, "return [{1}]") |> Enum.to_list()

    assert ["x"] =
             Snex.stream(i, "return [v]", %{"v" => "x"}, encoding_opts: [binary_as: :bytes])
             |> Enum.to_list()
  end

  test "streams and pyeval calls interleave on one interpreter", %{interpreter: i} do
    code = """
    import asyncio
    async def agen(tag):
        for n in range(50):
            await asyncio.sleep(0.001)
            yield (tag, n)
    return agen(tag)
    """

    tasks =
      for tag <- 1..3 do
        Task.async(fn ->
          Snex.stream(i, code, %{"tag" => tag}, batch_size: 5) |> Enum.to_list()
        end)
      end

    # A plain call is answered while the streams run.
    assert {:ok, 2} = Snex.pyeval(i, "return 1 + 1")

    for {task, tag} <- Enum.zip(tasks, 1..3) do
      assert Task.await(task, 30_000) == for(n <- 0..49, do: {tag, n})
    end
  end

  test "a timeout per batch", %{interpreter: i} do
    code =
      "import asyncio\nasync def agen():\n    yield 1\n    await asyncio.sleep(5)\n    yield 2\nreturn agen()"

    assert_raise Error, ~r/response_timeout/, fn ->
      Snex.stream(i, code, %{}, batch_size: 1, timeout: 300) |> Enum.to_list()
    end
  end
end
