defmodule Snex.SchedulerTest do
  # system_monitor is global to the node: not async.
  use ExUnit.Case, async: false

  @moduletag timeout: 180_000

  test "big payloads do not block a scheduler in Snex code" do
    {:ok, i} = start_supervised({Snex.Interpreter, []})
    {:ok, env} = Snex.make_env(i)
    big_binary = :binary.copy("x", 200_000_000)
    big_list = Enum.to_list(1..5_000_000)

    previous = :erlang.system_monitor(self(), [{:long_schedule, 20}])

    try do
      opts = [timeout: 120_000, encoding_opts: [binary_as: :bytes]]
      assert {:ok, 200_000_000} = Snex.pyeval(env, "return len(v)", %{"v" => big_binary}, opts)
      assert {:ok, ^big_binary} = Snex.pyeval(env, "return v", opts)
      assert {:ok, 5_000_000} = Snex.pyeval(env, "return len(l)", %{"l" => big_list}, opts)
      assert {:ok, ^big_list} = Snex.pyeval(env, "return l", opts)
    after
      restore(previous)
    end

    snex_reports =
      collect_reports()
      |> Enum.filter(fn {_pid, info} -> snex_location?(info) end)

    assert snex_reports == []
  end

  defp restore(:undefined), do: :erlang.system_monitor(:undefined)
  defp restore({pid, opts}), do: :erlang.system_monitor(pid, opts)

  defp collect_reports(acc \\ []) do
    receive do
      {:monitor, pid, :long_schedule, info} -> collect_reports([{pid, info} | acc])
    after
      0 -> acc
    end
  end

  defp snex_location?(info) do
    Enum.any?(info, fn
      {key, {module, _fun, _arity}} when key in [:in, :out] ->
        module |> Atom.to_string() |> String.starts_with?("Elixir.Snex")

      _ ->
        false
    end)
  end
end
