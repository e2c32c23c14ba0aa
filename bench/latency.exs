# Per-call latency and throughput of Snex.pyeval, next to the floors of the machine: a pipe
# ping-pong between two Python processes (what the OS gives two processes), and one between a
# BEAM port and a minimal Python loop with no Snex in it.
#
#     MIX_ENV=prod mix run bench/latency.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

n = String.to_integer(System.get_env("N", "5000"))
seconds = String.to_integer(System.get_env("SECONDS", "3"))

{:ok, interpreter} = Snex.Interpreter.start_link()
{:ok, env} = Snex.make_env(interpreter)
call = fn -> {:ok, 1} = Snex.pyeval(env, "return 1") end

port = Bench.open_raw_pipe()
raw = Bench.port_latency(port, n)
snex = Bench.pyeval_latency(env, n)

{os_median, os_p99} = Bench.native_pipe_floor(n)
raw_tput = Bench.throughput_here(seconds, fn -> Bench.raw_roundtrip(port, "x") end)
tput1 = Bench.throughput(1, seconds, call)
tput50 = Bench.throughput(50, seconds, call)

IO.puts("latency (µs), #{n} sequential calls; throughput over #{seconds} s\n")

Bench.table([
  ["", "median µs", "p99 µs", "calls/s (1)", "calls/s (50)"],
  [
    "pipe ping-pong, Python <-> Python (OS floor)",
    Bench.fmt(os_median),
    Bench.fmt(os_p99),
    "-",
    "-"
  ],
  [
    "pipe ping-pong through a BEAM port",
    Bench.fmt(Bench.median(raw)),
    Bench.fmt(Bench.percentile(raw, 99)),
    round(raw_tput),
    "-"
  ],
  [
    "Snex.pyeval(env, \"return 1\")",
    Bench.fmt(Bench.median(snex)),
    Bench.fmt(Bench.percentile(snex, 99)),
    round(tput1),
    round(tput50)
  ]
])

ratio = Bench.median(snex) / Bench.median(raw)
os_ratio = Bench.median(snex) / os_median

IO.puts(
  "\nmedian ratio snex/port: #{Float.round(ratio, 2)}, snex/OS floor: #{Float.round(os_ratio, 2)}"
)

IO.puts(
  "BENCH latency median_us=#{Bench.fmt(Bench.median(snex))} p99_us=#{Bench.fmt(Bench.percentile(snex, 99))} " <>
    "raw_median_us=#{Bench.fmt(Bench.median(raw))} ratio=#{Float.round(ratio, 2)} " <>
    "os_floor_us=#{Bench.fmt(os_median)} os_ratio=#{Float.round(os_ratio, 2)} " <>
    "cps1=#{round(tput1)} cps50=#{round(tput50)}"
)
