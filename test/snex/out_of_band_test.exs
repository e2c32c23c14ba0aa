defmodule Snex.OutOfBandTest do
  # Large binaries travel after the pickle, out of band (docs/protocol.md), in every direction:
  # request variables, `Snex.call` arguments and `snex.call` results from Elixir; results,
  # `snex.call` arguments and `snex.send` messages from Python. They must arrive as the same
  # values, of the same Python types, as small ones.
  use Snex.InterpreterCase, async: true

  alias Snex.Error

  # Above the out-of-band threshold (64 KiB), with every byte value.
  @big :binary.copy(:binary.list_to_bin(Enum.to_list(0..255)), 1024)
  @text :binary.copy("héllo ", 20_000)

  def echo(value), do: value
  def big, do: @big

  describe "Elixir → Python" do
    test "each binary_as gives its type", %{env: env} do
      cases = [
        {:str, @text, "'héllo ' * 20_000", "str"},
        {:bytes, @big, "bytes(range(256)) * 1024", "bytes"},
        {:bytearray, @big, "bytes(range(256)) * 1024", "bytearray"}
      ]

      for {as, value, expected, type} <- cases do
        assert {:ok, [^type, true]} =
                 Snex.pyeval(env, "return [type(x).__name__, x == #{expected}]", %{"x" => value},
                   encoding_opts: [binary_as: as]
                 )
      end
    end

    test "sizes around the threshold, sub-binaries and many binaries in one request", %{env: env} do
      sizes = [65_535, 65_536, 65_537, 1_000_000]
      parts = for n <- sizes, do: binary_part(@big <> @big <> @big <> @big, 1, n)

      assert {:ok, lengths} =
               Snex.pyeval(env, "return [len(p) for p in parts]", %{"parts" => parts},
                 encoding_opts: [binary_as: :bytes]
               )

      assert lengths == sizes
      assert {:ok, back} = Snex.pyeval(env, "return parts")
      assert back == parts

      many = for i <- 1..50, do: :binary.copy(<<i>>, 70_000)

      assert {:ok, true} =
               Snex.pyeval(
                 env,
                 "return all(m == bytes([i + 1]) * 70_000 for i, m in enumerate(many))",
                 %{"many" => many},
                 encoding_opts: [binary_as: :bytes]
               )
    end

    test "invalid UTF-8 as str is the call's encode error", %{env: env} do
      bad = <<255>> <> @big

      assert {:error, %Error{code: :encode_error, reason: reason}} =
               Snex.pyeval(env, "return 1", %{"x" => bad})

      assert reason =~ "not valid UTF-8 (at byte 0)"
      assert {:ok, 2} = Snex.pyeval(env, "return 2")
    end

    test "make_env variables, Snex.call arguments and snex.call results", %{interpreter: i} do
      {:ok, env} = Snex.make_env(i, %{"x" => @big}, encoding_opts: [binary_as: :bytes])
      assert {:ok, 262_144} = Snex.pyeval(env, "return len(x)")

      assert {:ok, 262_144} =
               Snex.call(env, "builtins", "len", [@big], encoding_opts: [binary_as: :bytes])

      assert {:ok, ["bytes", true]} =
               Snex.pyeval(env, """
               got = await snex.call("Elixir.Snex.OutOfBandTest", "big", [],
                                     result_encoding_opts={"binary_as": "bytes"})
               return [type(got).__name__, got == x]
               """)
    end

    test "the BEAM lets go of a sent binary once it is written", %{env: env} do
      :erlang.garbage_collect()
      before = :erlang.memory(:binary)

      task =
        Task.async(fn ->
          bin = :binary.copy("x", 50_000_000)

          {:ok, nil} =
            Snex.pyeval(env, "x = None", %{"x" => bin}, encoding_opts: [binary_as: :bytes])

          :ok
        end)

      assert :ok = Task.await(task, 30_000)

      assert Snex.Test.OSProcess.eventually(fn ->
               :erlang.garbage_collect()
               :erlang.memory(:binary) < before + 20_000_000
             end)
    end
  end

  describe "by reference (Linux vmsplice)" do
    @describetag :linux

    test "large binaries are spliced into the pipe each way and arrive whole", %{
      interpreter: i,
      env: env
    } do
      bin = :rand.bytes(5_000_000)
      before = Snex.Native.stats(Snex.Interpreter.resource(i)).spliced_bytes

      assert {:ok, md5} =
               Snex.pyeval(env, "import hashlib\nreturn hashlib.md5(x).digest()", %{"x" => bin},
                 encoding_opts: [binary_as: :bytes]
               )

      assert md5 == :erlang.md5(bin)
      assert Snex.Native.stats(Snex.Interpreter.resource(i)).spliced_bytes > before

      assert {:ok, nil} =
               Snex.pyeval(env, """
               import hashlib, os, snex.splice
               data = os.urandom(5_000_000)
               before = snex.splice.spliced_bytes
               """)

      assert {:ok, data} = Snex.pyeval(env, "return data")

      assert {:ok, [md5, true]} =
               Snex.pyeval(
                 env,
                 "return [hashlib.md5(data).digest(), snex.splice.spliced_bytes > before]"
               )

      assert :erlang.md5(data) == md5
    end
  end

  describe "concurrent large transfers" do
    test "each way, with small calls in between, arrive whole", %{env: env} do
      tasks =
        for n <- 1..8 do
          Task.async(fn ->
            bin = :rand.bytes(2_000_000 + n * 100_000)

            {:ok, md5} =
              Snex.pyeval(env, "import hashlib\nreturn hashlib.md5(x).digest()", %{"x" => bin},
                encoding_opts: [binary_as: :bytes]
              )

            {:ok, 1} = Snex.pyeval(env, "return 1")

            {:ok, [back, back_md5]} =
              Snex.pyeval(
                env,
                """
                import hashlib, os
                data = os.urandom(n)
                return [memoryview(data), hashlib.md5(data).digest()]
                """,
                %{"n" => byte_size(bin)}
              )

            {md5 == :erlang.md5(bin), back_md5 == :erlang.md5(back)}
          end)
        end

      assert Enum.map(tasks, &Task.await(&1, 30_000)) == List.duplicate({true, true}, 8)
    end
  end

  describe "Python → Elixir" do
    test "results: top-level bytes, buffers anywhere, array.array", %{env: env} do
      assert {:ok, big} = Snex.pyeval(env, "return bytes(range(256)) * 1024")
      assert big == @big

      assert {:ok, [a, %{"k" => b}, c, d]} =
               Snex.pyeval(env, """
               import array
               big = bytes(range(256)) * 1024
               return [memoryview(big), {"k": bytearray(big)}, array.array("d", [1.5] * 10_000),
                       memoryview(big)[::2]]
               """)

      assert a == @big and b == @big
      assert c == :binary.copy(<<1.5::float-little>>, 10_000)
      assert d == for(<<x, _ <- @big>>, into: <<>>, do: <<x>>)
    end

    test "snex.call arguments and snex.send messages", %{env: env} do
      assert {:ok, true} =
               Snex.pyeval(env, """
               big = bytes(range(256)) * 1024
               back = await snex.call("Elixir.Snex.OutOfBandTest", "echo", [memoryview(big)],
                                      result_encoding_opts={"binary_as": "bytes"})
               return back == big
               """)

      {:ok, nil} =
        Snex.pyeval(
          env,
          "await snex.send(me, ('big', memoryview(bytes(range(256)) * 1024)))",
          %{"me" => self()}
        )

      assert_receive {"big", big}
      assert big == @big
    end

    test "a numpy array is its bytes" do
      {:ok, numpy} =
        start_supervised({Snex.Test.NumpyInterpreter, init_script: "import numpy as np"})

      assert {:ok, [bin, raw]} =
               Snex.pyeval(numpy, """
               a = np.arange(200_000, dtype=np.float64)
               return [a, a.tobytes()[:16]]
               """)

      assert byte_size(bin) == 1_600_000
      assert binary_part(bin, 0, 16) == raw
      assert binary_part(bin, 8 * 199_999, 8) == <<199_999.0::float-little>>

      # Not C-contiguous: its bytes in C order.
      assert {:ok, t} = Snex.pyeval(numpy, "return np.arange(6, dtype=np.int8).reshape(2, 3).T")
      assert t == <<0, 3, 1, 4, 2, 5>>
    end

    test "a custom encoder, when set, gets buffer-like objects first" do
      {:ok, i} = start_supervised({Snex.Interpreter, []}, id: :custom)

      assert {:ok, [1.0, 2.0]} =
               Snex.pyeval(i, """
               import array
               snex.set_custom_encoder(lambda o: o.tolist() if isinstance(o, array.array) else o)
               return array.array("d", [1.0, 2.0])
               """)
    end

    test "a buffer table that does not fit its frame stops the interpreter" do
      {:ok, i} = Snex.Interpreter.start_link()
      Process.flag(:trap_exit, true)

      code = """
      import os, struct
      body = struct.pack(">I", 1) + struct.pack(">BQ", 1, 1 << 40) + b"\\x80\\x05N."
      os.write(4, struct.pack(">IBQ", 9 + len(body), 128 | 0x40, 1) + body)
      return 1
      """

      assert {:error, %Error{code: :call_failed, reason: reason}} =
               Snex.pyeval(i, code, timeout: 5_000)

      assert %Error{code: :interpreter_exited, reason: {:protocol_error, message}} = reason
      assert message =~ "buffer table"
    end
  end
end
