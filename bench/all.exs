# Every figure of the performance goals (large binaries each way, a numpy array, start-up, small
# call latency, concurrent callers), each next to its floor measured in the same run, in
# alternating rounds so that both see the same machine. Progress goes to stderr; the table (or,
# with --json, one JSON document) to stdout. See bench/README.md.
#
#     scripts/bench [--json] [--quick]
#     MIX_ENV=prod mix run bench/all.exs -- [--json] [--quick]
Code.require_file("bench_helper.exs", __DIR__)
Code.require_file("json.exs", __DIR__)
Code.require_file("report.exs", __DIR__)
alias Snex.Bench
alias Snex.Bench.Report

{opts, _rest, invalid} =
  System.argv()
  |> Enum.reject(&(&1 == "--"))
  |> OptionParser.parse(strict: [json: :boolean, quick: :boolean, help: :boolean])

if invalid != [] or opts[:help] do
  IO.puts(:stderr, "usage: scripts/bench [--json] [--quick]")
  System.halt(if(opts[:help], do: 0, else: 64))
end

json? = Keyword.get(opts, :json, false)
quick? = Keyword.get(opts, :quick, false)

# With --json, stdout carries the JSON document only: whatever else would be printed (a first
# sync of the numpy environment, say) goes to stderr.
if json?, do: Process.group_leader(self(), Process.whereis(:standard_error))

# Rounds of each step (a figure and its floors measured in turn) and samples per round.
plan =
  if quick? do
    %{
      mb10: {2, 4},
      mb200: {1, 2},
      numpy: {2, 4},
      start: {2, 3},
      latency: {2, 1000},
      callers: {1, 1}
    }
  else
    %{
      mb10: {3, 7},
      mb200: {3, 2},
      numpy: {3, 7},
      start: {3, 5},
      latency: {3, 2000},
      callers: {3, 2}
    }
  end

steps = 6
mb = 1_000_000
ms = fn samples -> Bench.median(samples) / 1000 end

progress = fn step, title ->
  fn round, label ->
    {rounds, _} = plan[title]
    IO.puts(:stderr, "[#{step}/#{steps}] #{label} (round #{round}/#{rounds}) ...")
  end
end

defmodule Snex.Bench.NumpyInterpreter do
  @moduledoc false
  use Snex.Interpreter,
    pyproject_toml: """
    [project]
    name = "snex-bench"
    version = "0.0.0"
    requires-python = ">=3.10"
    dependencies = ["numpy>=2"]
    """
end

{:ok, interpreter} = Snex.Interpreter.start_link()
{:ok, env} = Snex.make_env(interpreter)

{:ok, [python_version, python_executable]} =
  Snex.pyeval(env, "import sys\nreturn [sys.version.split()[0], sys.executable]")

placements = Bench.placements()

# 1. 10 MB binary each way. Large binaries are made inside functions, so that no variable of
# this script keeps them (the memory figure of step 2 counts what is left).
{rounds, runs} = plan.mb10

s10 =
  Bench.collecting(fn ->
    bin10 = :binary.copy("x", 10 * mb)

    Bench.rounds(
      rounds,
      [
        {:pipe, "10 MB through a pipe (floor)",
         fn -> Bench.pipe_transfer_floor(10 * mb, runs, placements) end},
        {:pickle, "10 MB pickle alone", fn -> Bench.pickle_alone(10 * mb, runs) end},
        {:e2p, "10 MB Elixir -> Python",
         fn -> Bench.to_python(env, bin10, [binary_as: :bytes], runs, 2) end},
        {:p2e, "10 MB Python -> Elixir",
         fn -> Bench.to_elixir(env, "b'x' * 10_000_000", runs, 2) end}
      ],
      progress.(1, :mb10)
    )
  end)

# 2. 200 MB each way, and the BEAM's memory before and after.
{rounds, runs} = plan.mb200
memory_goal = {:back_to_floor, 0.1, 20}
memory_before = Bench.beam_memory_quiet()

s200 =
  Bench.collecting(fn ->
    bin200 = :binary.copy("x", 200 * mb)

    Bench.rounds(
      rounds,
      [
        {:pipe, "200 MB through a pipe (floor)",
         fn -> Bench.pipe_transfer_floor(200 * mb, runs, placements) end},
        {:e2p, "200 MB Elixir -> Python",
         fn -> Bench.to_python(env, bin200, [binary_as: :bytes], runs, 1) end},
        {:p2e, "200 MB Python -> Elixir",
         fn -> Bench.to_elixir(env, "b'x' * 200_000_000", runs, 1) end}
      ],
      progress.(2, :mb200)
    )
  end)

# Memory that the BEAM frees only a moment after the calls have returned (a native thread
# dropping its reference) is waited for, at most 1 s, and the wait reported.
returned_at = System.monotonic_time(:microsecond)
memory_right_after = Bench.beam_memory()

{memory_after, _} =
  Bench.beam_memory_settled(
    fn m, _previous ->
      Enum.all?([:total, :binary], fn key ->
        Report.met?(memory_goal, m[key] / mb, memory_before[key] / mb, nil)
      end)
    end,
    1000
  )

memory_wait_ms = (System.monotonic_time(:microsecond) - returned_at) / 1000

# 3. 10 MB numpy float64 array Python -> Elixir: the array itself if Snex returns it as a
# binary, else a memoryview of it, else its bytes (the path used is printed).
{:ok, np_interpreter} = Snex.Bench.NumpyInterpreter.start_link()
{:ok, np_env} = Snex.make_env(np_interpreter)

{:ok, nil} =
  Snex.pyeval(np_env, "import numpy as np\narr = np.arange(1_250_000, dtype=np.float64)")

numpy_ok? = fn
  {:ok, <<0.0::float-little-64, 1.0::float-little-64, _::binary>> = b} -> byte_size(b) == 10 * mb
  _ -> false
end

{numpy_path, numpy_expr} =
  Enum.find(
    [
      {"the ndarray", "arr"},
      {"memoryview(arr)", "memoryview(arr)"},
      {"arr.tobytes()", "arr.tobytes()"}
    ],
    fn {_, expr} -> numpy_ok?.(Snex.pyeval(np_env, "return " <> expr)) end
  ) || raise "Snex returns none of arr, memoryview(arr), arr.tobytes() as the array's bytes"

IO.puts(:stderr, "numpy array returned as: #{numpy_path} (`return #{numpy_expr}`)")
{rounds, runs} = plan.numpy

snp =
  Bench.rounds(
    rounds,
    [
      {:pipe, "10 MB through a pipe (floor)",
       fn -> Bench.pipe_transfer_floor(10 * mb, runs, placements) end},
      {:p2e, "10 MB numpy array Python -> Elixir",
       fn -> Bench.to_elixir(np_env, numpy_expr, runs, 2) end}
    ],
    progress.(3, :numpy)
  )

:ok = Snex.Interpreter.stop(np_interpreter)

# 4. Start to ready, next to `python -c pass` run with the same executable (the one a default
# interpreter runs; on PATH it may be a wrapper such as a pyenv shim: the real executable,
# Python's `sys.executable`, is measured too when it differs).
{rounds, runs} = plan.start
python = Bench.python()
real_python? = python_executable != python

start_to_ready = fn opts ->
  fn ->
    {started, ready} = Bench.start_to_ready(runs, opts)
    %{start_link: started, ready: ready}
  end
end

pass = fn executable, flags ->
  fn -> Bench.command_time(executable, flags ++ ["-c", "pass"], runs) end
end

sstart =
  Bench.rounds(
    rounds,
    [
      {:start, "Snex.Interpreter.start_link + first pyeval", start_to_ready.([])},
      {:pass, "python -c pass", pass.(python, [])},
      {:pass_i, "python -I -c pass", pass.(python, ["-I"])},
      {:pass_s, "python -S -c pass", pass.(python, ["-S"])}
    ] ++
      if real_python? do
        [
          {:real, "Snex.Interpreter.start_link(python: sys.executable) + first pyeval",
           start_to_ready.(python: python_executable)},
          {:real_pass, "sys.executable -c pass", pass.(python_executable, [])}
        ]
      else
        []
      end,
    progress.(4, :start)
  )

# 5. Latency of a small call, next to a BEAM port's ping-pong with a minimal Python loop (a
# new port each round: the floor is the best of them, as where the OS places the two sides
# changes the round trip several times over), and the ping-pong between two Python processes.
{rounds, n} = plan.latency

port_pingpong = fn round ->
  port = Bench.open_raw_pipe()
  samples = Bench.port_latency(port, n, 200)
  Port.close(port)
  %{round => samples}
end

slat =
  Bench.rounds(
    rounds,
    [
      {:port, "port ping-pong (floor)", port_pingpong},
      {:pyeval, "pyeval \"return 1\"", fn -> Bench.pyeval_latency(env, n, 200) end},
      {:os, "Python <-> Python pipe ping-pong", fn -> Bench.native_pingpong(n, placements) end},
      {:runner, "Snex's Python side alone", fn -> Bench.runner_alone(n, placements) end},
      {:null, "Snex's BEAM side alone", fn -> Bench.null_runner_latency(n, 200) end}
    ],
    progress.(5, :latency)
  )

# 6. 50 concurrent callers on one interpreter, next to one caller.
{rounds, seconds} = plan.callers
call = fn -> {:ok, 1} = Snex.pyeval(env, "return 1") end

scallers =
  Bench.rounds(
    rounds,
    [
      {:one, "1 caller, #{seconds} s (floor)", fn -> [Bench.throughput(1, seconds, call)] end},
      {:fifty, "50 callers, #{seconds} s", fn -> [Bench.throughput(50, seconds, call)] end}
    ],
    progress.(6, :callers)
  )

# The figures.
where = %{same: "one CPU", apart: "two CPUs", any: "placed by the OS"}
mb_s = fn size, us -> size / mb / (us / 1_000_000) end
{pipe10_at, pipe10} = Bench.best(s10, :pipe)
{pipe200_at, pipe200} = Bench.best(s200, :pipe)
{pipenp_at, pipenp} = Bench.best(snp, :pipe)
{os_at, os_pingpong} = Bench.best(slat, :os)
{_, port_pingpong} = Bench.best(slat, :port)
port_samples = for {{:port, _}, s} <- slat, reduce: [], do: (acc -> acc ++ s)
pipe10_name = "10 MB through a pipe (#{where[pipe10_at]})"

figures = [
  Report.figure(
    "binary_10mb_elixir_to_python",
    "10 MB binary Elixir -> Python",
    ms.(s10.e2p),
    "ms",
    pipe10_name,
    pipe10 / 1000,
    {:at_most, 1.5}
  ),
  Report.figure(
    "binary_10mb_python_to_elixir",
    "10 MB bytes Python -> Elixir",
    ms.(s10.p2e),
    "ms",
    pipe10_name,
    pipe10 / 1000,
    {:at_most, 1.5}
  ),
  Report.figure(
    "binary_200mb_elixir_to_python",
    "200 MB binary Elixir -> Python",
    mb_s.(200 * mb, Bench.median(s200.e2p)),
    "MB/s",
    "pipe bandwidth (#{where[pipe200_at]})",
    mb_s.(200 * mb, pipe200),
    {:at_least, 0.5}
  ),
  Report.figure(
    "binary_200mb_python_to_elixir",
    "200 MB bytes Python -> Elixir",
    mb_s.(200 * mb, Bench.median(s200.p2e)),
    "MB/s",
    "pipe bandwidth (#{where[pipe200_at]})",
    mb_s.(200 * mb, pipe200),
    {:at_least, 0.5}
  ),
  Report.figure(
    "beam_memory_total_after_200mb",
    "BEAM memory, total, after the 200 MB calls",
    memory_after.total / mb,
    "MB",
    "before them",
    memory_before.total / mb,
    memory_goal
  ),
  Report.figure(
    "beam_memory_binary_after_200mb",
    "BEAM memory, binaries, after the 200 MB calls",
    memory_after.binary / mb,
    "MB",
    "before them",
    memory_before.binary / mb,
    memory_goal
  ),
  Report.figure(
    "numpy_10mb_python_to_elixir",
    "10 MB numpy float64 Python -> Elixir",
    ms.(snp.p2e),
    "ms",
    "10 MB through a pipe (#{where[pipenp_at]})",
    pipenp / 1000,
    {:at_most, 1.5}
  ),
  Report.figure(
    "start_to_ready",
    "start_link until a first pyeval answers",
    ms.(sstart[{:start, :ready}]),
    "ms",
    "python -c pass (same python)",
    ms.(sstart.pass),
    {:at_most, 2}
  ),
  real_python? &&
    Report.figure(
      "start_to_ready_sys_executable",
      "the same, python: sys.executable",
      ms.(sstart[{:real, :ready}]),
      "ms",
      "sys.executable -c pass",
      ms.(sstart.real_pass),
      {:at_most, 2}
    ),
  Report.figure(
    "pyeval_latency",
    "pyeval \"return 1\" latency",
    Bench.median(slat.pyeval),
    "µs",
    "port ping-pong (best port)",
    port_pingpong,
    {:at_most, 2}
  ),
  Report.figure(
    "callers_50_throughput",
    "50 callers on one interpreter",
    Bench.median(scallers.fifty),
    "calls/s",
    "1 caller",
    Bench.median(scallers.one),
    {:at_least, 4}
  )
]

# Without a separate Python behind the default one, there is no second start figure.
figures = Enum.filter(figures, & &1)

per_placement = fn samples, name, text, scale, unit ->
  for {{^name, at}, s} <- Enum.sort(samples) do
    Report.reference("#{text} (#{where[at]})", Bench.median(s) / scale, unit)
  end
end

references =
  Enum.concat([
    per_placement.(s10, :pipe, "10 MB through a pipe", 1000, "ms"),
    [
      Report.reference(
        "pickle.dumps + loads of 10 MB bytes (Python alone)",
        ms.(s10.pickle),
        "ms"
      )
    ],
    per_placement.(s200, :pipe, "200 MB through a pipe", 1000, "ms"),
    [
      Report.reference("200 MB binary Elixir -> Python", ms.(s200.e2p), "ms"),
      Report.reference("200 MB bytes Python -> Elixir", ms.(s200.p2e), "ms"),
      Report.reference(
        "BEAM memory right after the 200 MB calls, total / binaries",
        [memory_right_after.total / mb, memory_right_after.binary / mb],
        "MB"
      ),
      Report.reference("  ... back to the goal's level after", memory_wait_ms, "ms"),
      Report.reference("numpy array returned as", "#{numpy_path} (`return #{numpy_expr}`)"),
      Report.reference(
        "start_link alone (it returns when ready)",
        ms.(sstart[{:start, :start_link}]),
        "ms"
      ),
      Report.reference("python (a default interpreter's)", python),
      Report.reference("python -I -c pass", ms.(sstart.pass_i), "ms"),
      Report.reference("python -S -c pass", ms.(sstart.pass_s), "ms")
    ],
    if real_python? do
      [
        Report.reference("sys.executable", python_executable),
        Report.reference(
          "start_link alone, python: sys.executable",
          ms.(sstart[{:real, :start_link}]),
          "ms"
        )
      ]
    else
      []
    end,
    [
      Report.reference("pyeval \"return 1\" p99", Bench.percentile(slat.pyeval, 99), "µs"),
      Report.reference(
        "port ping-pong, median of each round's port",
        for({{:port, _}, s} <- Enum.sort(slat), do: Bench.median(s)),
        "µs"
      ),
      Report.reference(
        "port ping-pong p99, all ports",
        Bench.percentile(Enum.sort(port_samples), 99),
        "µs"
      )
    ],
    per_placement.(slat, :os, "Python <-> Python pipe ping-pong", 1, "µs"),
    [
      Report.reference(
        "pyeval \"return 1\" / Python <-> Python ping-pong (#{where[os_at]})",
        Bench.median(slat.pyeval) / os_pingpong,
        "×"
      )
    ],
    per_placement.(slat, :runner, "Snex's Python side alone, return 1, no BEAM", 1, "µs"),
    [
      Report.reference(
        "  ... the Python side / port ping-pong (best port)",
        elem(Bench.best(slat, :runner), 1) / port_pingpong,
        "×"
      ),
      Report.reference(
        "Snex's BEAM side alone, pyeval to a Python that does nothing",
        Bench.median(slat.null),
        "µs"
      ),
      Report.reference(
        "  ... the BEAM side / port ping-pong (best port)",
        Bench.median(slat.null) / port_pingpong,
        "×"
      )
    ]
  ])

meta = %{
  quick: quick?,
  otp: System.otp_release(),
  elixir: System.version(),
  python: python,
  python_executable: python_executable,
  python_version: python_version,
  schedulers: System.schedulers_online(),
  # Emulator flags change the figures (e.g. `+IOs false`, docs/decisions.md): say which.
  vm_flags:
    ~w(ERL_AFLAGS ERL_FLAGS ELIXIR_ERL_OPTIONS ERL_ZFLAGS)
    |> Enum.map(&String.trim(System.get_env(&1, "")))
    |> Enum.reject(&(&1 == ""))
    |> Enum.join(" "),
  placements: placements,
  rounds: Map.new(plan, fn {step, {rounds, per_round}} -> {step, [rounds, per_round]} end)
}

if json? do
  IO.write(:user, [Report.json(meta, figures, references), "\n"])
else
  IO.puts(
    "Snex benchmarks#{if quick?, do: " (--quick)", else: ""}: OTP #{meta.otp}, Elixir #{meta.elixir}, " <>
      "Python #{python_version} (#{python}), #{meta.schedulers} schedulers" <>
      if(meta.vm_flags == "", do: "", else: ", VM flags: #{meta.vm_flags}") <> "\n"
  )

  IO.write(Report.table(figures, references))

  IO.puts(
    "\nEvery floor is measured in this run. The pipe floors are those of the faster placement " <>
      "of\ntheir two processes (one CPU or two), the port ping-pong that of the best of a new " <>
      "port\neach round; the others are under references."
  )
end
