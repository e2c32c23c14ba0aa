defmodule Snex.SchedulerTest do
  # No call may hold a normal scheduler for long, whatever the data. The system monitor is
  # turned on by a separate process: the BEAM does not report long schedules of the monitoring
  # process itself. It is global to the node: not async.
  use Snex.InterpreterCase, async: false

  @moduletag timeout: 300_000

  # Milliseconds; the rule is about 1 ms, the margin is for a noisy 2-core machine.
  @threshold 5

  # {name, build the input, Python code, expected result}. Inputs are built before monitoring.
  @cases [
    {"improper list of 3 M", quote(do: Enum.to_list(1..3_000_000) ++ :tail), "return 0", 0},
    {"tuple of 1 M", quote(do: List.to_tuple(Enum.to_list(1..1_000_000))), "return len(v)",
     1_000_000},
    {"map of 1 M integer keys", quote(do: Map.new(1..1_000_000, &{&1, &1})), "return len(v)",
     1_000_000},
    {"9 MB binary", quote(do: :binary.copy("x", 9_000_000)), "return len(v)", 9_000_000},
    {"Encoder struct inside a 1 M list",
     quote(do: Enum.to_list(1..1_000_000) ++ [%Snex.Test.Money{cents: 1050, currency: "EUR"}]),
     "return str(v[-1])", "10.50"},
    {"list of 5 M integers", quote(do: Enum.to_list(1..5_000_000)), "return len(v)", 5_000_000}
  ]

  for {name, input, code, expected} <- @cases do
    test "sending a #{name}", %{interpreter: i} do
      input = unquote(input)
      {:ok, env} = Snex.make_env(i)

      assert_no_long_schedules(fn ->
        assert {:ok, unquote(expected)} =
                 Snex.pyeval(env, unquote(code), %{"v" => input}, timeout: 120_000)
      end)
    end
  end

  test "100 MB of Python source as code", %{interpreter: i} do
    code = "# " <> :binary.copy("x", 100_000_000) <> "\nreturn 0"
    assert_no_long_schedules(fn -> assert {:ok, 0} = Snex.pyeval(i, code, timeout: 120_000) end)
  end

  test "receiving 200 MB and 5 M integers", %{interpreter: i} do
    {:ok, env} = Snex.make_env(i)

    # Decoding runs on a dirty scheduler; back on its normal scheduler the caller sometimes
    # shows a few milliseconds after its (dirty) garbage collection of an 80 MB heap, which
    # is the BEAM's and would be the same for any producer of such a term.
    assert_no_long_schedules(20, fn ->
      opts = [timeout: 120_000]
      assert {:ok, bin} = Snex.pyeval(env, "return b'x' * 200_000_000", opts)
      assert byte_size(bin) == 200_000_000
      assert {:ok, list} = Snex.pyeval(env, "return list(range(5_000_000))", opts)
      assert length(list) == 5_000_000
      assert {:ok, map} = Snex.pyeval(env, "return {i: i for i in range(1_000_000)}", opts)
      assert map_size(map) == 1_000_000
    end)
  end

  test "the monitor sees a long schedule of the calling process (the test can fail)" do
    list = Enum.to_list(1..5_000_000)
    # list_to_tuple/1 does not yield: tens of milliseconds on one scheduler.
    assert [_ | _] = long_schedules(fn -> List.to_tuple(list) end)
  end

  # Runs `fun` and fails if Snex code held a scheduler for more than `max_ms`. A report in one
  # run may be the OS taking the scheduler's thread away on a loaded machine, so `fun` runs a
  # second time and only a report in both runs fails (the problems this guards against, work
  # proportional to the data on a normal scheduler, happen on every run).
  defp assert_no_long_schedules(max_ms \\ @threshold, fun) do
    snex_reports = fn ->
      long_schedules(fun)
      |> Enum.filter(&(snex_report?(&1) and Keyword.fetch!(&1, :timeout) > max_ms))
    end

    with [_ | _] <- snex_reports.() do
      reports = snex_reports.()
      assert reports == [], "long schedules in Snex code: #{inspect(reports, pretty: true)}"
    end
  end

  # Runs `fun` in this process while another process monitors long schedules of all
  # processes; returns those of this process.
  defp long_schedules(fun) do
    me = self()

    monitor =
      spawn_link(fn ->
        :erlang.system_monitor(self(), [{:long_schedule, @threshold}])
        send(me, {:monitoring, self()})
        collect(me, [])
      end)

    assert_receive {:monitoring, ^monitor}

    try do
      fun.()
    after
      # The BEAM reports a long schedule when the process is scheduled out: yield, so that a
      # long schedule of `fun` reaches the monitor before the request for its report does.
      :erlang.yield()
      send(monitor, {:report_to, me})
    end

    assert_receive {:long_schedules, reports}, 10_000
    reports
  end

  defp collect(caller, acc) do
    receive do
      {:monitor, ^caller, :long_schedule, info} ->
        collect(caller, [info | acc])

      {:monitor, _other, :long_schedule, _info} ->
        collect(caller, acc)

      {:report_to, to} ->
        :erlang.system_monitor(:undefined)
        send(to, {:long_schedules, Enum.reverse(acc)})
    end
  end

  # Reports inside Snex's code (not this test's own, where the caller's garbage collection of
  # the large values it asked for shows up).
  defp snex_report?(info) do
    Enum.any?(info, fn
      {key, {module, _fun, _arity}} when key in [:in, :out] and module != __MODULE__ ->
        module |> Atom.to_string() |> String.starts_with?("Elixir.Snex.")

      _ ->
        false
    end)
  end
end
