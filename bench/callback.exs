# Python → Elixir: round trip of `await snex.call("erlang", "abs", [1])` measured inside Python,
# and casts per second.
#
#     MIX_ENV=prod mix run bench/callback.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

n = String.to_integer(System.get_env("N", "5000"))

{:ok, interpreter} = Snex.Interpreter.start_link()
{:ok, env} = Snex.make_env(interpreter)

defmodule Snex.Bench.Sink do
  def noop(_), do: :ok
end

{:ok, [median, p99, casts_per_s]} =
  Snex.pyeval(
    env,
    """
    import time, statistics
    for _ in range(500):
        await snex.call("erlang", "abs", [1])
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await snex.call("erlang", "abs", [1])
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    t = time.perf_counter()
    for i in range(n):
        await snex.cast("Elixir.Snex.Bench.Sink", "noop", [i])
    casts = n / (time.perf_counter() - t)
    return [statistics.median(samples), samples[int(len(samples) * 0.99)], casts]
    """,
    %{"n" => n},
    timeout: :infinity
  )

port = Bench.open_raw_pipe()
Bench.sample(500, fn -> Bench.raw_roundtrip(port, "x") end)
raw = Bench.sample(n, fn -> Bench.raw_roundtrip(port, "x") end)

Bench.table([
  ["", "median µs", "p99 µs", "per second"],
  [
    "raw pipe ping-pong (floor)",
    Bench.fmt(Bench.median(raw)),
    Bench.fmt(Bench.percentile(raw, 99)),
    "-"
  ],
  [
    "await snex.call(\"erlang\", \"abs\", [1])",
    Bench.fmt(median),
    Bench.fmt(p99),
    round(1_000_000 / median)
  ],
  ["await snex.cast(...)", "-", "-", round(casts_per_s)]
])

IO.puts(
  "BENCH callback call_median_us=#{Bench.fmt(median)} call_p99_us=#{Bench.fmt(p99)} " <>
    "casts_per_s=#{round(casts_per_s)} raw_median_us=#{Bench.fmt(Bench.median(raw))}"
)
