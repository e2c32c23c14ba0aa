# `eager_polyfill?: true` (the default) against `false`: latency of synchronous code, of code
# that awaits, and of `await snex.call(...)` measured inside Python; next to the raw pipe floor.
#
#     MIX_ENV=prod mix run bench/eager.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

n = String.to_integer(System.get_env("N", "5000"))

port = Bench.open_raw_pipe()
Bench.sample(500, fn -> Bench.raw_roundtrip(port, "x") end)
raw = Bench.sample(n, fn -> Bench.raw_roundtrip(port, "x") end)

measure = fn eager? ->
  {:ok, interpreter} = Snex.Interpreter.start_link(eager_polyfill?: eager?)
  {:ok, env} = Snex.make_env(interpreter, %{}, [])
  {:ok, nil} = Snex.pyeval(env, "import asyncio")

  sync_call = fn -> {:ok, 1} = Snex.pyeval(env, "return 1") end
  async_call = fn -> {:ok, 1} = Snex.pyeval(env, "await asyncio.sleep(0)\nreturn 1") end
  Bench.sample(500, sync_call)
  Bench.sample(500, async_call)

  {:ok, callback} =
    Snex.pyeval(
      env,
      """
      import time
      for _ in range(500):
          await snex.call("erlang", "abs", [1])
      samples = []
      for _ in range(n):
          t = time.perf_counter()
          await snex.call("erlang", "abs", [1])
          samples.append((time.perf_counter() - t) * 1e6)
      return sorted(samples)
      """,
      %{"n" => n},
      timeout: :infinity
    )

  result = %{
    sync: Bench.sample(n, sync_call),
    async: Bench.sample(n, async_call),
    callback: callback
  }

  Snex.Interpreter.stop(interpreter)
  result
end

eager = measure.(true)
plain = measure.(false)

IO.puts("median µs of #{n} sequential calls (p99 in parentheses)\n")

cell = fn samples ->
  "#{Bench.fmt(Bench.median(samples))} (#{Bench.fmt(Bench.percentile(samples, 99))})"
end

ratio = fn key -> Float.round(Bench.median(eager[key]) / Bench.median(plain[key]), 2) end

Bench.table([
  ["", "eager_polyfill?: true", "false", "ratio"],
  ["raw pipe ping-pong (floor)", cell.(raw), "-", "-"],
  ["pyeval \"return 1\"", cell.(eager.sync), cell.(plain.sync), ratio.(:sync)],
  ["pyeval with await asyncio.sleep(0)", cell.(eager.async), cell.(plain.async), ratio.(:async)],
  ["await snex.call (in Python)", cell.(eager.callback), cell.(plain.callback), ratio.(:callback)]
])

IO.puts(
  "\nBENCH eager sync_us=#{Bench.fmt(Bench.median(eager.sync))}/#{Bench.fmt(Bench.median(plain.sync))} " <>
    "async_us=#{Bench.fmt(Bench.median(eager.async))}/#{Bench.fmt(Bench.median(plain.async))} " <>
    "call_us=#{Bench.fmt(Bench.median(eager.callback))}/#{Bench.fmt(Bench.median(plain.callback))} " <>
    "raw_us=#{Bench.fmt(Bench.median(raw))}"
)
