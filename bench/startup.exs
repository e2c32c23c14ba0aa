# Interpreter start-up next to its floor, measured in the same run with the same Python
# executable: `python -c pass` (started from the BEAM through a port),
# `Snex.Interpreter.start_link` until it returns (start to ready), and start to the first
# `Snex.pyeval "return 1"` reply. Runs alternate between the three, so that the machine's load
# hits them alike. Prints a table and a `startup key=value ...` line.
#
#     MIX_ENV=prod mix run bench/startup.exs            # N=30 runs each
#     PYTHON=/path/to/python3 mix run bench/startup.exs # default: python3 on PATH, resolved
#
# `python3` on PATH may be a shim (pyenv): the default is the executable it runs, found by asking
# that Python for `sys.executable` once, before measuring.
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

n = String.to_integer(System.get_env("N", "30"))

python =
  case System.get_env("PYTHON") do
    nil ->
      {path, 0} =
        System.cmd(System.find_executable("python3"), [
          "-c",
          "import sys; print(sys.executable)"
        ])

      String.trim(path)

    path ->
      path
  end

pass = fn ->
  port = Port.open({:spawn_executable, python}, [:binary, :exit_status, args: ["-c", "pass"]])

  receive do
    {^port, {:exit_status, 0}} -> :ok
  end
end

ready = fn ->
  {:ok, pid} = Snex.Interpreter.start_link(python: python)
  pid
end

timed = fn fun ->
  t0 = System.monotonic_time(:nanosecond)
  result = fun.()
  {(System.monotonic_time(:nanosecond) - t0) / 1_000_000, result}
end

# Warm-up (page cache, the NIF loaded).
for _ <- 1..3 do
  pass.()
  Snex.Interpreter.stop(ready.())
end

IO.puts(:stderr, "#{n} runs each, Python #{python}")

samples =
  for i <- 1..n, reduce: %{pass: [], ready: [], first: []} do
    acc ->
      if rem(i, 10) == 0, do: IO.puts(:stderr, "  run #{i}/#{n}")
      {t_pass, _} = timed.(pass)
      {t_ready, pid} = timed.(ready)
      Snex.Interpreter.stop(pid)

      {t_first, pid} =
        timed.(fn ->
          pid = ready.()
          {:ok, 1} = Snex.pyeval(pid, "return 1")
          pid
        end)

      Snex.Interpreter.stop(pid)
      %{pass: [t_pass | acc.pass], ready: [t_ready | acc.ready], first: [t_first | acc.first]}
  end

stats = Map.new(samples, fn {k, v} -> {k, Enum.sort(v)} end)
floor = Bench.median(stats.pass)
fmt = fn ms -> :erlang.float_to_binary(ms, decimals: 1) end

IO.puts("\nstart-up (ms), #{n} runs each, #{python}\n")

Bench.table([
  ["", "median ms", "p10 ms", "p90 ms", "× python -c pass"],
  [
    "python -c pass (floor)",
    fmt.(floor),
    fmt.(Bench.percentile(stats.pass, 10)),
    fmt.(Bench.percentile(stats.pass, 90)),
    "1.00"
  ],
  [
    "start_link until it returns (start to ready)",
    fmt.(Bench.median(stats.ready)),
    fmt.(Bench.percentile(stats.ready, 10)),
    fmt.(Bench.percentile(stats.ready, 90)),
    :erlang.float_to_binary(Bench.median(stats.ready) / floor, decimals: 2)
  ],
  [
    "start_link + first pyeval \"return 1\"",
    fmt.(Bench.median(stats.first)),
    fmt.(Bench.percentile(stats.first, 10)),
    fmt.(Bench.percentile(stats.first, 90)),
    :erlang.float_to_binary(Bench.median(stats.first) / floor, decimals: 2)
  ]
])

IO.puts(
  "\nstartup python_pass_ms=#{fmt.(floor)} start_to_ready_ms=#{fmt.(Bench.median(stats.ready))} " <>
    "first_reply_ms=#{fmt.(Bench.median(stats.first))} " <>
    "ratio_ready=#{:erlang.float_to_binary(Bench.median(stats.ready) / floor, decimals: 2)}"
)
