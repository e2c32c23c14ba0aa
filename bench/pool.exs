# Snex.Pool: throughput of CPU-bound calls with 1, 2 and 4 members (and one plain interpreter
# for comparison; the same work in as many plain Python processes is the ceiling), and what
# picking a member adds to the latency of a small call.
#
#     MIX_ENV=prod mix run bench/pool.exs
#
# Environment: SECONDS (per run, default 3), CALLERS (concurrent callers, default 8), N (the
# size of the CPU-bound loop, default 20 000: about 1-2 ms of Python).
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

defmodule PoolBench do
  @moduledoc false
  # Compiled, so that the loop costs nothing next to what it measures.
  def resolve_us(target, n) do
    {t, _} = :timer.tc(fn -> loop(target, n) end)
    t / n
  end

  defp loop(_target, 0), do: :ok

  defp loop(target, n) do
    Snex.Target.resolve(target)
    loop(target, n - 1)
  end
end

seconds = String.to_integer(System.get_env("SECONDS", "3"))
callers = String.to_integer(System.get_env("CALLERS", "8"))
n = String.to_integer(System.get_env("N", "20000"))
cpu = "return sum(i * i for i in range(n))"
vars = %{"n" => n}

cores = :erlang.system_info(:logical_processors_available)
cores = if is_integer(cores), do: cores, else: :erlang.system_info(:logical_processors)

IO.puts(
  "#{cores} cores (#{System.schedulers_online()} schedulers online); #{callers} concurrent " <>
    "callers, #{seconds} s per run; each call: sum(i * i for i in range(#{n}))\n"
)

# A single interpreter: the baseline.
{:ok, single} = Snex.Interpreter.start_link()
{:ok, _} = Snex.pyeval(single, cpu, vars)
{t, _} = :timer.tc(fn -> for _ <- 1..20, do: {:ok, _} = Snex.pyeval(single, cpu, vars) end)
call_ms = t / 20 / 1000

single_cps =
  Bench.throughput(callers, seconds, fn -> {:ok, _} = Snex.pyeval(single, cpu, vars) end)

Snex.Interpreter.stop(single)

# The ceiling: the same work in 1, 2 and 4 plain Python processes, outside the BEAM, measured
# now (the machine may be shared: its other load shows here too).
floor_py = """
import multiprocessing as mp, sys, time

def work(n, seconds, out):
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        sum(i * i for i in range(n))
        count += 1
    out.put(count)

n, seconds, procs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
out = mp.Queue()
ps = [mp.Process(target=work, args=(n, seconds, out)) for _ in range(procs)]
for p in ps:
    p.start()
total = sum(out.get() for _ in ps)
for p in ps:
    p.join()
print(total / seconds)
"""

python = Bench.python()

ceiling =
  for procs <- [1, 2, 4] do
    args = ["-c", floor_py, to_string(n), to_string(seconds), to_string(procs)]
    {out, 0} = System.cmd(python, args)
    {procs, out |> String.trim() |> String.to_float()}
  end

pools =
  for size <- [1, 2, 4] do
    name = :"bench_pool_#{size}"
    {:ok, _} = Snex.Pool.start_link(name: name, size: size)
    for _ <- 1..(size * 4), do: {:ok, _} = Snex.pyeval(name, cpu, vars)
    cps = Bench.throughput(callers, seconds, fn -> {:ok, _} = Snex.pyeval(name, cpu, vars) end)
    Snex.Pool.stop(name)
    {size, cps}
  end

IO.puts("One call alone: #{Bench.fmt(call_ms)} ms\n")

Bench.table([
  ["target", "calls/s", "vs 1 member", "plain Python processes, calls/s"]
  | [["interpreter", round(single_cps), "-", "-"]] ++
      for {size, cps} <- pools do
        {1, one} = List.keyfind(pools, 1, 0)
        {^size, py} = List.keyfind(ceiling, size, 0)
        ["pool of #{size}", round(cps), "#{Bench.fmt(cps / one)}x", round(py)]
      end
])

# Latency of `return 1`, one caller: a plain interpreter against a pool of 1 and of 4 (the cost
# of picking: an ETS lookup and the members' pending counts).
{:ok, plain} = Snex.Interpreter.start_link(name: :bench_plain)
{:ok, _} = Snex.Pool.start_link(name: :bench_pick_1, size: 1)
{:ok, _} = Snex.Pool.start_link(name: :bench_pick_4, size: 4)

latency =
  for target <- [:bench_plain, :bench_pick_1, :bench_pick_4] do
    call = fn -> {:ok, 1} = Snex.pyeval(target, "return 1") end
    Bench.sample(2_000, call)
    {target, Bench.median(Bench.sample(10_000, call))}
  end

pick =
  for target <- [:bench_plain, :bench_pick_1, :bench_pick_4] do
    {target, PoolBench.resolve_us(target, 200_000)}
  end

IO.puts("\nOne caller, `return 1`:\n")

Bench.table([
  ["target", "median µs", "resolving the target µs"]
  | for {target, median} <- latency do
      [target, Bench.fmt(median), Bench.fmt(elem(List.keyfind(pick, target, 0), 1))]
    end
])

Snex.Interpreter.stop(plain)

IO.puts(
  "BENCH pool cores=#{cores} interpreter_cps=#{round(single_cps)} " <>
    Enum.map_join(pools, " ", fn {size, cps} -> "pool#{size}_cps=#{round(cps)}" end) <>
    " " <>
    Enum.map_join(ceiling, " ", fn {procs, cps} -> "python#{procs}_cps=#{round(cps)}" end) <>
    " " <>
    Enum.map_join(latency, " ", fn {target, median} -> "#{target}_us=#{Bench.fmt(median)}" end)
)
