defmodule Snex.Bench do
  @moduledoc false
  # Shared helpers of the benchmarks: timing, statistics, the floors (pipes, pickle alone, a
  # port's ping-pong, python -c pass) and the measurements that several benchmarks take.

  @doc "Runs `fun` `n` times and returns the sorted durations in microseconds."
  def sample(0, _fun), do: []

  def sample(n, fun) do
    for _ <- 1..n do
      t0 = System.monotonic_time(:nanosecond)
      fun.()
      (System.monotonic_time(:nanosecond) - t0) / 1000
    end
    |> Enum.sort()
  end

  def median(sorted), do: percentile(sorted, 50)

  def percentile(sorted, p) do
    idx = min(length(sorted) - 1, trunc(length(sorted) * p / 100))
    Enum.at(sorted, idx)
  end

  @doc "Calls per second of `fun` run by `concurrency` processes for `seconds`."
  def throughput(concurrency, seconds, fun) do
    deadline = System.monotonic_time(:millisecond) + seconds * 1000
    parent = self()

    pids =
      for _ <- 1..concurrency do
        spawn_link(fn -> send(parent, {:count, loop(fun, deadline, 0)}) end)
      end

    total = Enum.sum(for _ <- pids, do: receive(do: ({:count, n} -> n)))
    total / seconds
  end

  @doc "Calls per second of `fun` run by the calling process for `seconds`."
  def throughput_here(seconds, fun) do
    deadline = System.monotonic_time(:millisecond) + seconds * 1000
    loop(fun, deadline, 0) / seconds
  end

  defp loop(fun, deadline, n) do
    if System.monotonic_time(:millisecond) >= deadline do
      n
    else
      fun.()
      loop(fun, deadline, n + 1)
    end
  end

  # The floors measured outside the BEAM (pipes between two processes, pickle alone, the echo
  # loop behind a port) are in floors.py, run with the default Python of an interpreter.
  @floors Path.join(__DIR__, "floors.py")

  @doc "The Python an interpreter runs by default (`python3`, then `python`, on `PATH`)."
  def python do
    {:ok, path} = Snex.Interpreter.PythonLookup.default()
    path
  end

  defp floors(args) do
    {out, 0} = System.cmd(python(), [@floors | Enum.map(args, &to_string/1)])
    out |> String.split() |> Enum.map(&(Float.parse(&1) |> elem(0))) |> Enum.sort()
  end

  @doc """
  Where floors.py can place its two processes: `[:same, :apart]` (one CPU, two CPUs) on a
  machine with two CPUs or more, `[:same]` on one, `[:any]` (left to the OS) where processes
  cannot be pinned.
  """
  def placements do
    case floors([:cpus]) do
      [0.0] -> [:any]
      [1.0] -> [:same]
      _ -> [:same, :apart]
    end
  end

  @doc """
  Sorted durations (µs) of moving `size` bytes from one Python process to another through a
  pipe, read into a preallocated buffer, for each placement of the two processes (a map):
  the floor of any transfer through a pipe.
  """
  def pipe_transfer_floor(size, runs, placements \\ placements()) do
    Map.new(placements, &{&1, floors([:transfer, size, runs, &1])})
  end

  @doc "Sorted durations (µs) of `pickle.dumps(data, 5)` + `pickle.loads` of `size` bytes."
  def pickle_alone(size, runs), do: floors([:pickle, size, runs])

  @doc """
  Sorted round trips (µs) of a pipe ping-pong between two Python processes, outside the BEAM,
  for each placement of the two processes (a map): the round trip the OS gives two processes,
  the floor of any design with Python in its own process.
  """
  def native_pingpong(n, placements \\ placements()) do
    Map.new(placements, &{&1, floors([:pingpong, n, &1])})
  end

  @doc """
  Sorted round trips (µs) of `return 1` through Snex's Python side alone (`python -m snex`
  driven by a Python process, no BEAM), for each placement of the two processes (a map): a
  reference for what `pyeval` can reach.
  """
  def runner_alone(n, placements \\ placements()) do
    package = Application.app_dir(:snex, "priv/python")
    Map.new(placements, &{&1, floors([:runner, n, &1, package])})
  end

  @doc """
  Sorted latencies (µs) of `pyeval "return 1"` to an interpreter whose Python is the
  `null-runner` of floors.py (a stand-in that answers at once): Snex's BEAM side alone.
  """
  def null_runner_latency(n, warmup \\ 500) do
    stand_in = fn python, _args -> {python, [@floors, "null-runner"]} end
    {:ok, interpreter} = Snex.Interpreter.start_link(wrap_exec: stand_in)
    {:ok, env} = Snex.make_env(interpreter)
    samples = pyeval_latency(env, n, warmup)
    GenServer.stop(interpreter)
    samples
  end

  @doc "Median and p99 of `native_pingpong/1` with the processes placed by the OS."
  def native_pipe_floor(n) do
    %{any: samples} = native_pingpong(n, [:any])
    {median(samples), percentile(samples, 99)}
  end

  @doc """
  The best of the variants of a floor (the placements measured by `pipe_transfer_floor/3` or
  `native_pingpong/2`, the ports of the rounds), found in `samples` under `{name, key}`, as
  `rounds/3` returns them: `{key, median}` of the variant with the lowest median.
  """
  def best(samples, name) do
    for {{^name, key}, s} <- samples do
      {key, median(s)}
    end
    |> Enum.min_by(&elem(&1, 1))
  end

  @doc "A minimal Python echo loop behind a port (4-byte length packets): the latency floor."
  def open_raw_pipe do
    Port.open({:spawn_executable, python()}, [
      :binary,
      {:packet, 4},
      args: ["-u", @floors, "echo"]
    ])
  end

  def raw_roundtrip(port, payload) do
    send(port, {self(), {:command, payload}})

    receive do
      {^port, {:data, data}} -> data
    end
  end

  @doc "Sorted round trips (µs) of `raw_roundtrip/2` with a 1-byte payload, after a warm-up."
  def port_latency(port, n, warmup \\ 500) do
    sample(warmup, fn -> raw_roundtrip(port, "x") end)
    sample(n, fn -> raw_roundtrip(port, "x") end)
  end

  @doc "Sorted latencies (µs) of `Snex.pyeval(env, \"return 1\")`, after a warm-up."
  def pyeval_latency(env, n, warmup \\ 500) do
    call = fn -> {:ok, 1} = Snex.pyeval(env, "return 1") end
    sample(warmup, call)
    sample(n, call)
  end

  @doc """
  Sorted durations (µs) of sending `data` to Python (`x = None` with `x` bound to it) with the
  given encoding options, after `warmup` unmeasured calls.
  """
  def to_python(env, data, encoding_opts, runs, warmup \\ 0) do
    call = fn ->
      {:ok, nil} =
        Snex.pyeval(env, "x = None", %{"x" => data},
          encoding_opts: encoding_opts,
          timeout: :infinity
        )
    end

    sample(warmup, call)
    sample(runs, call)
  end

  @doc """
  Sorted durations (µs) of `return data` in `env`, `data` being the value of `python_expr`
  (set before, dropped after), after `warmup` unmeasured calls. `check` is given each result.
  """
  def to_elixir(env, python_expr, runs, warmup \\ 0, check \\ fn _ -> :ok end) do
    {:ok, nil} = Snex.pyeval(env, "data = " <> python_expr, timeout: :infinity)

    call = fn ->
      {:ok, result} = Snex.pyeval(env, "return data", timeout: :infinity)
      result
    end

    sample(warmup, call)
    samples = sample(runs, fn -> check.(call.()) end)
    {:ok, nil} = Snex.pyeval(env, "data = None")
    samples
  end

  @doc """
  Start-up of an interpreter started with `opts`, `runs` times: sorted durations (µs) of
  `start_link/1` alone and of `start_link/1` until a first `pyeval "return 1"` has answered.
  The interpreter is stopped after each run, outside the timing.
  """
  def start_to_ready(runs, opts \\ []) do
    {started, ready} =
      for _ <- 1..runs do
        t0 = System.monotonic_time(:nanosecond)
        {:ok, interpreter} = Snex.Interpreter.start_link(opts)
        t1 = System.monotonic_time(:nanosecond)
        {:ok, 1} = Snex.pyeval(interpreter, "return 1")
        t2 = System.monotonic_time(:nanosecond)
        :ok = Snex.Interpreter.stop(interpreter)
        {(t1 - t0) / 1000, (t2 - t0) / 1000}
      end
      |> Enum.unzip()

    {Enum.sort(started), Enum.sort(ready)}
  end

  @doc "Sorted durations (µs) of running `executable` with `args` to its end (`System.cmd/2`)."
  def command_time(executable, args, runs) do
    sample(runs, fn -> {_, 0} = System.cmd(executable, args) end)
  end

  @doc """
  The result of `fun`, run by this process, which is then garbage collected: what `fun` made
  and dropped (a large binary, say) is no longer referenced from here.
  """
  def collecting(fun) do
    result = fun.()
    :erlang.garbage_collect()
    result
  end

  @doc """
  `beam_memory/0`, measured again every 10 ms until `ok?` is true of it (given the memory
  and the previous measurement) or `max_ms` have passed: `{memory, ms waited}`.
  """
  def beam_memory_settled(ok?, max_ms) do
    t0 = System.monotonic_time(:millisecond)
    settle(ok?, nil, t0, t0 + max_ms)
  end

  defp settle(ok?, previous, t0, deadline) do
    memory = beam_memory()
    now = System.monotonic_time(:millisecond)

    if ok?.(memory, previous) or now >= deadline do
      {memory, now - t0}
    else
      Process.sleep(10)
      settle(ok?, memory, t0, deadline)
    end
  end

  @doc """
  `beam_memory/0` once it has stopped changing: two measurements 10 ms apart within 1 MB of
  each other (waiting at most `max_ms`). Memory that a call leaves behind for a moment (a
  native thread dropping its reference to a binary) is gone by then.
  """
  def beam_memory_quiet(max_ms \\ 1000) do
    {memory, _ms} =
      beam_memory_settled(
        fn
          _memory, nil -> false
          memory, previous -> abs(memory.total - previous.total) < 1_000_000
        end,
        max_ms
      )

    memory
  end

  @doc "`:erlang.memory/1` `:total` and `:binary` (bytes), after garbage collecting this process."
  def beam_memory do
    :erlang.garbage_collect()
    # One call, so that both figures are of the same moment.
    [total: total, binary: binary] = :erlang.memory([:total, :binary])
    %{total: total, binary: binary}
  end

  @doc """
  Runs every `{name, label, fun}` of `samplers` once per round, `rounds` times, in turn; each
  `fun` (given the round number if it takes an argument) returns sorted samples, or a map of keys to sorted samples. Returns a map of every
  name (`{name, key}` for a map) to all its samples, sorted. Measuring a figure and its floor in alternating rounds lets
  both see the same machine. `progress` is called with the round number and the label before
  each sampler runs.
  """
  def rounds(rounds, samplers, progress \\ fn _round, _label -> :ok end) do
    for round <- 1..rounds, {name, label, fun} <- samplers, reduce: %{} do
      acc ->
        progress.(round, label)

        case if(is_function(fun, 1), do: fun.(round), else: fun.()) do
          samples when is_list(samples) -> %{name => samples}
          by_key when is_map(by_key) -> Map.new(by_key, fn {key, s} -> {{name, key}, s} end)
        end
        |> Enum.reduce(acc, fn {name, samples}, acc ->
          Map.update(acc, name, samples, &(&1 ++ samples))
        end)
    end
    |> Map.new(fn {name, samples} -> {name, Enum.sort(samples)} end)
  end

  def fmt(us) when is_float(us), do: :erlang.float_to_binary(us, decimals: 1)
  def fmt(n), do: to_string(n)

  @doc "Prints `rows` (lists of cells) as left-aligned columns."
  def table(rows), do: IO.write(columns(rows))

  @doc "`rows` (lists of cells) as left-aligned columns, one line each (iodata)."
  def columns(rows) do
    widths =
      rows
      |> Enum.zip_with(& &1)
      |> Enum.map(fn col -> col |> Enum.map(&String.length(to_string(&1))) |> Enum.max() end)

    for row <- rows do
      line =
        row
        |> Enum.zip(widths)
        |> Enum.map_join("  ", fn {cell, w} -> String.pad_trailing(to_string(cell), w) end)

      [String.trim_trailing(line), "\n"]
    end
  end
end
