defmodule Snex.CallbacksTest do
  use Snex.InterpreterCase, async: true
  import ExUnit.CaptureLog

  alias Snex.Error
  alias Snex.Test.LogForwarder

  def echo_self(value), do: {self(), value}
  def big_then_struct(n), do: Enum.to_list(1..n) ++ [%Snex.Test.Plain{}]
  def fail(kind), do: if(kind == :throw, do: throw(:thrown), else: exit(:exited))

  describe "snex.call results" do
    test "too big for a normal scheduler and holding a struct", %{env: env} do
      # The encoding runs out of its normal-scheduler budget, then meets the struct on a dirty
      # scheduler: both retries must happen.
      assert {:ok, [100_000, %{"a" => 1, "b" => "two", "__struct__" => Snex.Test.Plain}]} =
               Snex.pyeval(env, """
               r = await snex.call("Elixir.Snex.CallbacksTest", "big_then_struct", [100_000])
               return [len(r) - 1, {str(k): v for k, v in r[-1].items()}]
               """)
    end
  end

  describe "snex.send" do
    test "to a pid", %{env: env} do
      {:ok, nil} = Snex.pyeval(env, "await snex.send(me, ('hello', 1))", %{"me" => self()})
      assert_receive {"hello", 1}
    end

    test "to a registered name", %{env: env} do
      Process.register(self(), :snex_send_target)

      {:ok, nil} =
        Snex.pyeval(env, "await snex.send(snex.Atom('snex_send_target'), snex.Atom('hi'))")

      assert_receive :hi
    end

    test "to {name, node}", %{env: env} do
      Process.register(self(), :snex_send_target2)

      {:ok, nil} =
        Snex.pyeval(env, "await snex.send((snex.Atom('snex_send_target2'), node), 42)", %{
          "node" => node()
        })

      assert_receive 42
    end
  end

  describe "snex.call and snex.cast" do
    test "call returns the result", %{env: env} do
      assert {:ok, 5} = Snex.pyeval(env, "return await snex.call('erlang', 'abs', [-5])")

      assert {:ok, [2, 4]} =
               Snex.pyeval(env, "return await snex.call('Elixir.Enum', 'map', [[1, 2], f])", %{
                 "f" => &(&1 * 2)
               })
    end

    test "calls run in their own process, not the interpreter", %{env: env, interpreter: i} do
      {:ok, {pid, 1}} =
        Snex.pyeval(env, "return await snex.call('Elixir.Snex.CallbacksTest', 'echo_self', [1])")

      assert pid != i and pid != self()
    end

    test "an Elixir raise becomes snex.ElixirError", %{env: env} do
      code = """
      try:
          await snex.call("erlang", "div", [10, 0])
      except snex.ElixirError as e:
          return str(e)
      """

      assert {:ok, message} = Snex.pyeval(env, code)
      assert message =~ "ArithmeticError"
    end

    test "throw and exit become snex.ElixirError", %{env: env} do
      for kind <- [:throw, :exit] do
        code = """
        try:
            await snex.call("Elixir.Snex.CallbacksTest", "fail", [kind])
        except snex.ElixirError as e:
            return str(e)
        """

        assert {:ok, message} = Snex.pyeval(env, code, %{"kind" => kind})
        assert message =~ if(kind == :throw, do: "thrown", else: "exited")
      end
    end

    test "1,000 concurrent calls all resolve", %{env: env} do
      code = """
      import asyncio
      results = await asyncio.gather(*[snex.call("erlang", "abs", [-i]) for i in range(1000)])
      return results == list(range(1000))
      """

      assert {:ok, true} = Snex.pyeval(env, code, timeout: 30_000)
    end

    test "result_encoding_opts", %{env: env} do
      code = """
      v = await snex.call("erlang", "list_to_binary", [[104, 105]],
                          result_encoding_opts={snex.Atom("binary_as"): snex.Atom("bytes")})
      return type(v).__name__
      """

      assert {:ok, "bytes"} = Snex.pyeval(env, code)
    end

    test "cast runs the function", %{env: env} do
      {:ok, nil} =
        Snex.pyeval(env, "await snex.cast('erlang', 'send', [me, snex.Atom('casted')])", %{
          "me" => self()
        })

      assert_receive :casted
    end

    test "cast failures are logged", %{env: env} do
      LogForwarder.attach()

      capture_log(fn ->
        {:ok, nil} = Snex.pyeval(env, "await snex.cast('erlang', 'div', [1, 0])")
        assert [{:error, message, _}] = LogForwarder.await(["cast from Python failed"])
        assert message =~ "ArithmeticError"
      end)
    end

    test "calls from a Python thread", %{env: env} do
      code = """
      import asyncio, concurrent.futures
      def work():
          return asyncio.run(snex.call("erlang", "abs", [-3]))
      with concurrent.futures.ThreadPoolExecutor() as pool:
          return await asyncio.get_running_loop().run_in_executor(pool, work)
      """

      assert {:ok, 3} = Snex.pyeval(env, code)
    end
  end

  describe "module proxies" do
    test "Elixir.Mod.fun(*args)", %{env: env} do
      assert {:ok, %{"a" => 2, "b" => 1}} =
               Snex.pyeval(env, "return await Elixir.Enum.frequencies(['a', 'b', 'a'])")

      assert {:ok, "abc"} = Snex.pyeval(env, "return await Elixir.String.Chars.to_string('abc')")
    end

    test "BeamModuleProxy for Erlang modules and cast=True", %{env: env} do
      assert {:ok, hash} =
               Snex.pyeval(env, "return await snex.BeamModuleProxy('erlang').phash2(1)")

      assert hash == :erlang.phash2(1)

      {:ok, nil} =
        Snex.pyeval(env, "await Elixir.Kernel.send(me, snex.Atom('proxied'), cast=True)", %{
          "me" => self()
        })

      assert_receive :proxied
    end

    test "calling a module proxy or reading a dunder raises", %{env: env} do
      assert {:error, %Error{code: :python_runtime_error}} = Snex.pyeval(env, "Elixir.Enum()")

      assert {:error, %Error{code: :python_runtime_error}} =
               Snex.pyeval(env, "return Elixir.Enum.__wrapped__")
    end
  end

  describe "logging" do
    test "records at every level reach Logger with metadata", %{env: env} do
      code = """
      import logging
      logger = logging.getLogger("snex_test")
      logger.propagate = False
      logger.setLevel(logging.DEBUG)
      logger.addHandler(snex.LoggingHandler(default_metadata={"app": "demo"}))
      logger.debug("dbg")
      logger.info("inf %d", 1)
      logger.warning("wrn")
      logger.error("err")
      logger.critical("crit")
      """

      LogForwarder.attach()

      capture_log(fn ->
        {:ok, nil} = Snex.pyeval(env, code)

        events = LogForwarder.await([~r/^dbg$/, ~r/^inf 1$/, ~r/^wrn$/, ~r/^err$/, ~r/^crit$/])
        assert Enum.map(events, &elem(&1, 0)) == [:debug, :info, :warning, :error, :critical]
        assert Enum.map(events, &elem(&1, 1)) == ["dbg", "inf 1", "wrn", "err", "crit"]

        for {_, _, meta} <- events do
          assert meta[:python_logger_name] == "snex_test"
          assert meta[:app] == "demo"
        end
      end)
    end

    test "logging from a thread", %{env: env} do
      code = """
      import logging, threading
      logger = logging.getLogger("snex_thread")
      logger.propagate = False
      logger.addHandler(snex.LoggingHandler())
      t = threading.Thread(target=lambda: logger.warning("from thread"))
      t.start(); t.join()
      """

      LogForwarder.attach()

      capture_log(fn ->
        {:ok, nil} = Snex.pyeval(env, code)
        assert [{:warning, "from thread", _}] = LogForwarder.await([~r/^from thread$/])
      end)
    end
  end
end
