# How long Snex's NIF calls hold a normal scheduler for the largest requests and replies that
# are still handled there (anything larger goes to a dirty scheduler). The rule is "well under
# 1 ms"; this prints the median and the worst of many calls for each shape at its limit.
#
#     MIX_ENV=prod mix run bench/normal_scheduler.exs
Code.require_file("bench_helper.exs", __DIR__)
alias Snex.Bench

{:ok, i} = Snex.Interpreter.start_link()
{:local, _pid, res, _} = Snex.Target.resolve(i)
tag = make_ref()
runs = 200

# Requests just under the routing limits (see native/snex_nif/src/route.rs).
requests = [
  {"list of 500 ints", Enum.to_list(1..500)},
  {"tuple of 1 000 ints", List.to_tuple(Enum.to_list(1..1_000))},
  {"map of 480 int keys", Map.new(1..480, &{&1, &1})},
  {"map of 480 mixed keys", Map.new(1..480, &{if(rem(&1, 2) == 0, do: &1, else: &1 + 0.5), &1})},
  {"list of 100 4-key maps",
   for(n <- 1..100, do: %{"a" => n, "b" => "x", "c" => 1.5, "d" => nil})},
  {"250 KB string", :binary.copy("x", 250_000)},
  {"list of 500 atoms", for(n <- 1..500, do: :"atom_#{rem(n, 100)}")}
]

IO.puts("Encoding on a normal scheduler (Snex.Native.submit, queueing included), µs:")
IO.puts(String.pad_trailing("request", 28) <> " route    median     max")

for {name, value} <- requests do
  request = {:eval, res, tag, -1, "pass", "<bench>", 0, 0, nil, %{"v" => value}, false}

  # A request taken on a normal scheduler is answered: its reply is awaited here too, so that
  # each reply awaited below is that of the call just timed.
  route =
    case Snex.Native.submit(request) do
      {:ok, _} -> receive(do: ({^tag, _, _} -> "normal"))
      :dirty -> "dirty"
    end

  # Only the NIF call is timed; each reply is awaited before the next call.
  samples =
    Enum.sort(
      for _ <- 1..runs do
        t0 = System.monotonic_time(:nanosecond)

        result = Snex.Native.submit(request)
        elapsed = (System.monotonic_time(:nanosecond) - t0) / 1000
        if match?({:ok, _}, result), do: receive(do: ({^tag, _, _} -> :ok))
        elapsed
      end
    )

  IO.puts(
    String.pad_trailing(name, 28) <>
      " #{String.pad_trailing(route, 6)} #{:io_lib.format("~8.1f ~8.1f", [Bench.median(samples), List.last(samples)])}"
  )
end

# Replies: the largest bodies decoded on a normal scheduler (4 KiB), of the costliest shapes.
replies = [
  {"list of small ints", "list(range(100, 1_300))"},
  {"list of None", "[None] * 4_000"},
  {"dict of int keys", "{i: None for i in range(100, 1_100)}"},
  {"set of ints", "set(range(100, 1_300))"},
  {"list of floats", "[i / 3 for i in range(400)]"},
  {"list of short strs", "[chr(65 + i % 26) + str(i) for i in range(400)]"},
  {"list of tuples", "[(i, None) for i in range(100, 700)]"},
  {"list of atoms", "[snex.Atom('ok')] * 1_500"}
]

IO.puts("\nDecoding on a normal scheduler (Snex.Native.decode_body), µs:")
IO.puts(String.pad_trailing("reply", 28) <> "  bytes   median     max")

for {name, expr} <- replies do
  {:ok, body} =
    Snex.pyeval(i, "from snex import codec\nreturn codec.encode(#{expr})", %{},
      encoding_opts: [binary_as: :bytes]
    )

  {:ok, _} = Snex.Native.decode_body(body, nil)
  samples = Bench.sample(runs, fn -> Snex.Native.decode_body(body, nil) end)

  IO.puts(
    String.pad_trailing(name, 28) <>
      "#{String.pad_leading(Integer.to_string(byte_size(body)), 7)} #{:io_lib.format("~8.1f ~8.1f", [Bench.median(samples), List.last(samples)])}"
  )
end
