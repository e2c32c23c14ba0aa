defmodule Snex.Bench do
  @moduledoc false
  # Shared helpers of the benchmarks: timing, statistics and the raw-pipe floor.

  @doc "Runs `fun` `n` times and returns the sorted durations in microseconds."
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

  @pong """
  import os, sys

  def read_exact(n):
      data = b""
      while len(data) < n:
          chunk = os.read(0, n - len(data))
          if not chunk:
              sys.exit(0)
          data += chunk
      return data

  while True:
      head = read_exact(4)
      body = read_exact(int.from_bytes(head, "big"))
      os.write(1, head + body)
  """

  @doc "A minimal Python echo loop behind a port (4-byte length packets): the latency floor."
  def open_raw_pipe do
    Port.open({:spawn_executable, System.find_executable("python3")}, [
      :binary,
      {:packet, 4},
      args: ["-u", "-c", @pong]
    ])
  end

  def raw_roundtrip(port, payload) do
    send(port, {self(), {:command, payload}})

    receive do
      {^port, {:data, data}} -> data
    end
  end

  @native_pong """
  import os, statistics, sys, time

  n = int(sys.argv[1])
  to_child_r, to_child_w = os.pipe()
  to_parent_r, to_parent_w = os.pipe()
  if os.fork() == 0:
      os.close(to_child_w)
      os.close(to_parent_r)
      while True:
          data = os.read(to_child_r, 64)
          if not data:
              os._exit(0)
          os.write(to_parent_w, data)
  os.close(to_child_r)
  os.close(to_parent_w)
  samples = []
  for i in range(n + 500):
      t = time.perf_counter()
      os.write(to_child_w, b"ping")
      os.read(to_parent_r, 64)
      if i >= 500:
          samples.append((time.perf_counter() - t) * 1e6)
  os.close(to_child_w)
  print(statistics.median(samples), sorted(samples)[int(n * 0.99)])
  """

  @doc """
  Median and p99 (µs) of a pipe ping-pong between two Python processes, outside the BEAM: the
  round trip the OS gives two processes, the floor of any design with Python in its own process.
  """
  def native_pipe_floor(n) do
    {out, 0} = System.cmd(System.find_executable("python3"), ["-c", @native_pong, to_string(n)])
    [median, p99] = out |> String.split() |> Enum.map(&String.to_float/1)
    {median, p99}
  end

  def fmt(us) when is_float(us), do: :erlang.float_to_binary(us, decimals: 1)
  def fmt(n), do: to_string(n)

  def table(rows) do
    widths =
      rows
      |> Enum.zip_with(& &1)
      |> Enum.map(fn col -> col |> Enum.map(&String.length(to_string(&1))) |> Enum.max() end)

    for row <- rows do
      row
      |> Enum.zip(widths)
      |> Enum.map_join("  ", fn {cell, w} -> String.pad_trailing(to_string(cell), w) end)
      |> IO.puts()
    end
  end
end
