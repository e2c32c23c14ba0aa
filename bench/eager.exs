# `eager_polyfill?: true` (the default) against `false`: latency of synchronous code, of code
# that awaits, and of `await snex.call(...)` measured inside Python; next to the pipe ping-pong between two Python processes (the OS floor).
#
#     MIX_ENV=prod mix run bench/eager.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

n = String.to_integer(System.get_env("N", "5000"))

{os_median, os_p99} = Bench.native_pipe_floor(n)

# Both interpreters run side by side and are measured in alternating rounds, so that both see
# the same machine (on 2 cores, where the OS places the BEAM's and Python's threads changes the
# latency by 2x from one moment to the next).
rounds = 10

start = fn eager? ->
  {:ok, interpreter} = Snex.Interpreter.start_link(eager_polyfill?: eager?)
  {:ok, env} = Snex.make_env(interpreter)
  {:ok, nil} = Snex.pyeval(env, "import asyncio, time")
  env
end

kinds = %{
  sync: fn env -> {:ok, 1} = Snex.pyeval(env, "return 1") end,
  async: fn env -> {:ok, 1} = Snex.pyeval(env, "await asyncio.sleep(0)\nreturn 1") end
}

callback = fn env, count ->
  {:ok, samples} =
    Snex.pyeval(
      env,
      """
      samples = []
      for _ in range(n):
          t = time.perf_counter()
          await snex.call("erlang", "abs", [1])
          samples.append((time.perf_counter() - t) * 1e6)
      return samples
      """,
      %{"n" => count},
      timeout: :infinity
    )

  samples
end

envs = %{true => start.(true), false => start.(false)}

for {_, env} <- envs do
  Enum.each(kinds, fn {_, call} -> Bench.sample(500, fn -> call.(env) end) end)
  callback.(env, 500)
end

per_round = div(n, rounds)

samples =
  for _ <- 1..rounds, eager? <- [true, false], reduce: %{} do
    acc ->
      env = envs[eager?]

      round =
        Map.new(kinds, fn {kind, call} ->
          {kind, Bench.sample(per_round, fn -> call.(env) end)}
        end)
        |> Map.put(:callback, callback.(env, per_round))

      Map.update(acc, eager?, round, &Map.merge(&1, round, fn _, a, b -> a ++ b end))
  end

[eager, plain] =
  for eager? <- [true, false],
      do: Map.new(samples[eager?], fn {kind, list} -> {kind, Enum.sort(list)} end)

IO.puts(
  "median µs of #{n} sequential calls in #{rounds} alternating rounds (p99 in parentheses)\n"
)

cell = fn samples ->
  "#{Bench.fmt(Bench.median(samples))} (#{Bench.fmt(Bench.percentile(samples, 99))})"
end

ratio = fn key -> Float.round(Bench.median(eager[key]) / Bench.median(plain[key]), 2) end

Bench.table([
  ["", "eager_polyfill?: true", "false", "ratio"],
  [
    "pipe ping-pong, Python <-> Python (OS floor)",
    "#{Bench.fmt(os_median)} (#{Bench.fmt(os_p99)})",
    "-",
    "-"
  ],
  ["pyeval \"return 1\"", cell.(eager.sync), cell.(plain.sync), ratio.(:sync)],
  ["pyeval with await asyncio.sleep(0)", cell.(eager.async), cell.(plain.async), ratio.(:async)],
  ["await snex.call (in Python)", cell.(eager.callback), cell.(plain.callback), ratio.(:callback)]
])

IO.puts(
  "\nBENCH eager sync_us=#{Bench.fmt(Bench.median(eager.sync))}/#{Bench.fmt(Bench.median(plain.sync))} " <>
    "async_us=#{Bench.fmt(Bench.median(eager.async))}/#{Bench.fmt(Bench.median(plain.async))} " <>
    "call_us=#{Bench.fmt(Bench.median(eager.callback))}/#{Bench.fmt(Bench.median(plain.callback))} " <>
    "os_floor_us=#{Bench.fmt(os_median)}"
)
