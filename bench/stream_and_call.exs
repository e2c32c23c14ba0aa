# Snex.stream against one pyeval returning the whole list, and Snex.call against the
# equivalent pyeval.
#
#     MIX_ENV=prod mix run bench/stream_and_call.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

{:ok, i} = Snex.Interpreter.start_link()
n = 1_000_000
opts = [timeout: 120_000]

# The median of 3 runs of `fun`, in seconds.
median_s = fn fun -> Bench.median(Bench.sample(3, fun)) / 1_000_000 end

IO.puts("Items per second over range(#{n}) (median of 3 runs):")

whole =
  median_s.(fn ->
    {:ok, list} = Snex.pyeval(i, "return list(range(n))", %{"n" => n}, opts)
    ^n = length(list)
  end)

IO.puts("  pyeval, the whole list:   #{round(n / whole)} items/s")

for batch <- [100, 1_000, 10_000] do
  t =
    median_s.(fn ->
      ^n =
        Snex.stream(i, "return iter(range(n))", %{"n" => n}, [batch_size: batch] ++ opts)
        |> Enum.count()
    end)

  IO.puts(
    "  Snex.stream, batch #{String.pad_leading(Integer.to_string(batch), 6)}: #{round(n / t)} items/s (#{Float.round(whole / t, 2)}x the whole list)"
  )
end

IO.puts("\nLatency, µs (median of 2 000 calls, 3 alternating rounds):")
{:ok, env} = Snex.make_env(i)
{:ok, nil} = Snex.pyeval(env, "import math")
call = fn -> {:ok, 2.0} = Snex.call(env, "math", "sqrt", [4]) end
eval = fn -> {:ok, 2.0} = Snex.pyeval(env, "return math.sqrt(x)", %{"x" => 4}) end
Bench.sample(500, call)
Bench.sample(500, eval)

for round <- 1..3 do
  c = Bench.median(Bench.sample(2_000, call))
  e = Bench.median(Bench.sample(2_000, eval))

  IO.puts(
    "  round #{round}: Snex.call(env, \"math\", \"sqrt\", [4]) #{Float.round(c, 1)}, " <>
      "Snex.pyeval(env, \"return math.sqrt(x)\") #{Float.round(e, 1)} (ratio #{Float.round(c / e, 2)})"
  )
end
