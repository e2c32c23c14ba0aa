defmodule Snex.EnvTest do
  use ExUnit.Case, async: true

  alias Snex.Error
  alias Snex.Test.OSProcess

  setup do
    {:ok, interpreter} = start_supervised({Snex.Interpreter, init_script: "root_var = 'root'"})
    {:ok, interpreter: interpreter}
  end

  defp live_envs(interpreter) do
    {:ok, n} = Snex.pyeval(interpreter, "return snex.runner.live_env_count()")
    n
  end

  describe "make_env from other envs" do
    setup %{interpreter: i} do
      {:ok, a} = Snex.make_env(i, %{"x" => 1, "y" => 2, "z" => 3})
      {:ok, b} = Snex.make_env(i, %{"x" => 10, "w" => 40})
      {:ok, a: a, b: b}
    end

    test "copies all variables", %{a: a} do
      {:ok, env} = Snex.make_env(from: a)
      assert {:ok, [1, 2, 3, "root"]} = Snex.pyeval(env, "return [x, y, z, root_var]")
    end

    test "only and except", %{a: a} do
      {:ok, env} = Snex.make_env(from: {a, only: ["x"]})
      assert {:ok, [1, false]} = Snex.pyeval(env, "return [x, 'y' in globals()]")

      {:ok, env} = Snex.make_env(from: {a, except: ["x"]})
      assert {:ok, [false, 2, 3]} = Snex.pyeval(env, "return ['x' in globals(), y, z]")
    end

    test "later sources override earlier ones and vars win", %{interpreter: i, a: a, b: b} do
      {:ok, env} = Snex.make_env(i, %{"w" => 400}, from: [a, b])
      assert {:ok, [10, 2, 400]} = Snex.pyeval(env, "return [x, y, w]")

      {:ok, env} = Snex.make_env(%{"y" => 20}, from: [b, a])
      assert {:ok, [1, 20, 40]} = Snex.pyeval(env, "return [x, y, w]")
    end

    test "copies are shallow copies, not shared namespaces", %{a: a} do
      {:ok, env} = Snex.make_env(from: a)
      {:ok, nil} = Snex.pyeval(env, "x = 100")
      assert {:ok, 1} = Snex.pyeval(a, "return x")
    end

    test "a missing only name is env_key_not_found", %{a: a} do
      assert {:error, %Error{code: :env_key_not_found, reason: reason}} =
               Snex.make_env(from: {a, only: ["x", "nope"]})

      assert reason =~ "nope"
    end

    test "only and except together raise", %{a: a} do
      assert_raise ArgumentError, fn -> Snex.make_env(from: {a, only: ["x"], except: ["y"]}) end
    end

    test "envs of different interpreters raise", %{a: a} do
      {:ok, other} = start_supervised({Snex.Interpreter, []}, id: :other)
      {:ok, c} = Snex.make_env(other)
      assert_raise ArgumentError, fn -> Snex.make_env(from: [a, c]) end
      assert_raise ArgumentError, fn -> Snex.make_env(other, from: a) end
    end

    test "a destroyed source is env_not_found", %{a: a} do
      :ok = Snex.destroy_env(a)
      assert {:error, %Error{code: :env_not_found}} = Snex.make_env(from: a)
    end

    test "make_env options", %{interpreter: i} do
      {:ok, env} =
        Snex.make_env(i, %{"b" => "bin"}, encoding_opts: [binary_as: :bytes], timeout: 5_000)

      assert {:ok, "bytes"} = Snex.pyeval(env, "return type(b).__name__")

      assert_raise ArgumentError, fn ->
        Snex.make_env(i, %{}, encoding_opts: [binary_as: :nope])
      end

      assert_raise ArgumentError, fn -> Snex.make_env([]) end
    end

    test "an env is not an interpreter to make an env in (copy it with :from)", %{a: a} do
      assert_raise ArgumentError, ~r/not an interpreter/, fn -> Snex.make_env(a) end
      assert_raise ArgumentError, ~r/not an interpreter/, fn -> Snex.make_env(a, %{"v" => 1}) end

      assert_raise ArgumentError, ~r/not an interpreter/, fn ->
        Snex.make_env(a, timeout: 1_000)
      end
    end
  end

  describe "destroy and garbage collection" do
    test "destroy_env is idempotent and later use is env_not_found", %{interpreter: i} do
      {:ok, env} = Snex.make_env(i)
      assert Snex.Env.interpreter(env) == i
      assert :ok = Snex.destroy_env(env)
      assert :ok = Snex.destroy_env(env)
      assert {:error, %Error{code: :env_not_found}} = Snex.pyeval(env, "return 1")
    end

    test "destroy_env is harmless when the interpreter is gone" do
      {:ok, i} = Snex.Interpreter.start_link()
      {:ok, env} = Snex.make_env(i)
      :ok = Snex.Interpreter.stop(i)
      assert :ok = Snex.destroy_env(env)
    end

    test "a dropped env is freed in Python", %{interpreter: i} do
      base = live_envs(i)

      task =
        Task.async(fn ->
          {:ok, _env} = Snex.make_env(i, %{"big" => String.duplicate("x", 1000)})
          live_envs(i)
        end)

      assert Task.await(task) == base + 1
      # The task's heap, and with it the last reference, is gone.
      assert OSProcess.eventually(fn -> live_envs(i) == base end)
    end

    test "a disabled-GC env survives until destroy_env", %{interpreter: i} do
      base = live_envs(i)
      parent = self()

      {pid, ref} =
        spawn_monitor(fn ->
          {:ok, env} = Snex.make_env(i, %{"kept" => 42})
          send(parent, {:env, Snex.Env.disable_gc(env) |> Map.take([:id, :interpreter])})
        end)

      assert_receive {:env, %{id: id}}
      # The maker is gone with its heap, and with it the env's last reference.
      assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
      :erlang.garbage_collect()
      # A destroy frame sent when the env's last reference went would be handled before this
      # call, which uses the same pipe.
      assert {:ok, 1} = Snex.pyeval(i, "return 1")
      assert live_envs(i) == base + 1

      # Rebuild a handle (as another node would hold it) and destroy through it.
      env = %Snex.Env{id: id, interpreter: i, ref: make_ref()}
      assert {:ok, 42} = Snex.pyeval(env, "return kept")
      :ok = Snex.destroy_env(env)
      assert OSProcess.eventually(fn -> live_envs(i) == base end)
    end

    @tag timeout: 120_000
    test "10,000 envs made and dropped leave the interpreter's memory flat", %{interpreter: i} do
      rss = fn ->
        {:ok, kb} = Snex.pyeval(i, "return int(open('/proc/self/statm').read().split()[1]) * 4")

        kb
      end

      churn = fn n ->
        for _ <- 1..n do
          {:ok, env} = Snex.make_env(i, %{"payload" => String.duplicate("y", 2_000)})
          {:ok, _} = Snex.pyeval(env, "return len(payload)")
        end

        :erlang.garbage_collect()
      end

      base_envs = live_envs(i)
      # Warm up allocator pools before measuring.
      churn.(1_000)
      assert OSProcess.eventually(fn -> live_envs(i) == base_envs end)
      before = rss.()
      churn.(10_000)
      assert OSProcess.eventually(fn -> live_envs(i) == base_envs end, 20_000)
      growth_kb = rss.() - before
      # 10,000 leaked envs would hold at least 20 MB of payload.
      assert growth_kb < 5_000, "RSS grew by #{growth_kb} KB"
    end
  end
end
