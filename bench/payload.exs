# Throughput of data crossing each way, next to the floor: pickle.dumps + pickle.loads of the
# same objects inside Python alone (no pipe, no Elixir).
#
#     MIX_ENV=prod mix run bench/payload.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

runs = String.to_integer(System.get_env("RUNS", "5"))
big_runs = String.to_integer(System.get_env("BIG_RUNS", "3"))

{:ok, interpreter} = Snex.Interpreter.start_link()
{:ok, env} = Snex.make_env(interpreter)

records =
  for i <- 1..100_000 do
    %{id: i, name: "user #{i}", score: i * 1.5, tags: {:a, "b"}, active: rem(i, 2) == 0}
  end

cases = [
  {"1M integers", Enum.to_list(1..1_000_000), [], runs, "list(range(1, 1_000_001))"},
  {"10 MB binary", :binary.copy("x", 10_000_000), [binary_as: :bytes], runs, "b'x' * 10_000_000"},
  {"200 MB binary", :binary.copy("x", 200_000_000), [binary_as: :bytes], big_runs,
   "b'x' * 200_000_000"},
  {"100k records", records, [], runs,
   """
   [{snex.Atom("id"): i, snex.Atom("name"): f"user {i}", snex.Atom("score"): i * 1.5,
     snex.Atom("tags"): (snex.Atom("a"), "b"), snex.Atom("active"): i % 2 == 0}
    for i in range(1, 100_001)]
   """}
]

median_ms = fn samples -> Bench.median(samples) / 1000 end

rows =
  for {name, data, enc, n, python_expr} <- cases do
    size = :erlang.external_size(data)

    to_python = Bench.to_python(env, data, enc, n)
    to_elixir = Bench.to_elixir(env, python_expr, n)

    {:ok, [dumps_ms, loads_ms, pickled]} =
      Snex.pyeval(
        env,
        """
        data = #{python_expr}
        import pickle, time, statistics
        d, l = [], []
        for _ in range(n):
            t = time.perf_counter(); p = pickle.dumps(data, 5); d.append(time.perf_counter() - t)
            t = time.perf_counter(); pickle.loads(p); l.append(time.perf_counter() - t)
        return [statistics.median(d) * 1000, statistics.median(l) * 1000, len(p)]
        """,
        %{"n" => n},
        timeout: :infinity
      )

    floor_ms = dumps_ms + loads_ms
    {:ok, nil} = Snex.pyeval(env, "data = None")

    e2p = median_ms.(to_python)
    p2e = median_ms.(to_elixir)
    mb = pickled / 1_000_000

    [
      name,
      Float.round(mb, 1),
      Float.round(e2p, 1),
      Float.round(mb / (e2p / 1000), 1),
      Float.round(p2e, 1),
      Float.round(mb / (p2e / 1000), 1),
      Float.round(floor_ms, 1),
      Float.round(e2p / floor_ms, 2),
      Float.round(p2e / floor_ms, 2),
      size
    ]
  end

Bench.table([
  ["case", "MB", "E→P ms", "E→P MB/s", "P→E ms", "P→E MB/s", "floor ms", "E→P/floor", "P→E/floor"]
  | Enum.map(rows, &Enum.take(&1, 9))
])

for [name, _, e2p, _, p2e, _, floor, r1, r2, _] <- rows do
  IO.puts(
    "BENCH payload case=#{inspect(name)} e2p_ms=#{e2p} p2e_ms=#{p2e} floor_ms=#{floor} e2p_ratio=#{r1} p2e_ratio=#{r2}"
  )
end
