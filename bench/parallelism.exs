# 50 concurrent callers on one interpreter with `parallelism: true` (callers encode and submit
# concurrently) and `parallelism: false` (one at a time; contended callers wait for their turn
# on a dirty I/O scheduler): per-call latency and total throughput.
#
#     MIX_ENV=prod mix run bench/parallelism.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

callers = String.to_integer(System.get_env("CALLERS", "50"))
seconds = String.to_integer(System.get_env("SECONDS", "2"))

xs = Enum.to_list(1..10_000)

cases = [
  {"return 1", "return 1", %{}},
  {"10k-integer list", "return len(xs)", %{"xs" => xs}}
]

# Every caller calls `fun` until the deadline; returns all latencies (µs, sorted) and calls/s.
run = fn fun ->
  parent = self()
  deadline = System.monotonic_time(:millisecond) + seconds * 1000

  loop = fn loop, acc ->
    if System.monotonic_time(:millisecond) >= deadline do
      acc
    else
      t0 = System.monotonic_time(:nanosecond)
      fun.()
      loop.(loop, [(System.monotonic_time(:nanosecond) - t0) / 1000 | acc])
    end
  end

  for _ <- 1..callers, do: spawn_link(fn -> send(parent, {:latencies, loop.(loop, [])}) end)
  all = Enum.flat_map(1..callers, fn _ -> receive(do: ({:latencies, l} -> l)) end)
  {Enum.sort(all), length(all) / seconds}
end

results =
  for parallelism <- [true, false], {name, code, vars} <- cases do
    {:ok, interpreter} = Snex.Interpreter.start_link(port_opts: [parallelism: parallelism])
    {:ok, env} = Snex.make_env(interpreter)
    call = fn -> {:ok, _} = Snex.pyeval(env, code, vars) end
    Bench.sample(200, call)
    {latencies, cps} = run.(call)
    Snex.Interpreter.stop(interpreter)
    {parallelism, name, Bench.median(latencies), Bench.percentile(latencies, 99), cps}
  end

IO.puts("#{callers} concurrent callers on one interpreter, #{seconds} s per run\n")

Bench.table([
  ["parallelism", "request", "median µs", "p99 µs", "calls/s"]
  | for {parallelism, name, median, p99, cps} <- results do
      [parallelism, name, Bench.fmt(median), Bench.fmt(p99), round(cps)]
    end
])

IO.puts(
  "BENCH parallelism " <>
    Enum.map_join(results, " ", fn {parallelism, name, median, _p99, cps} ->
      key = if name == "return 1", do: "small", else: "list"

      "#{key}_#{parallelism}_median_us=#{Bench.fmt(median)} #{key}_#{parallelism}_cps=#{round(cps)}"
    end)
)
