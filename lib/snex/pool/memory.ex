defmodule Snex.Pool.Memory do
  @moduledoc false
  # The resident set size of an OS process, for `Snex.Pool`'s `max_memory`: `VmRSS` of
  # `/proc/<pid>/status` on Linux (no process spawned, no page size needed), `ps -o rss=`
  # elsewhere (macOS, the BSDs).

  @doc "The RSS of OS process `os_pid` in bytes, or nil if it cannot be read (e.g. it is gone)."
  @spec rss(non_neg_integer()) :: non_neg_integer() | nil
  def rss(os_pid) do
    case :os.type() do
      {:unix, :linux} -> proc_rss(os_pid)
      _ -> ps_rss(os_pid)
    end
  end

  @doc "The RSS from `/proc/<pid>/status` (Linux)."
  @spec proc_rss(non_neg_integer()) :: non_neg_integer() | nil
  def proc_rss(os_pid) do
    with {:ok, status} <- File.read("/proc/#{os_pid}/status"),
         [_, kib] <- Regex.run(~r/^VmRSS:\s+(\d+) kB$/m, status) do
      String.to_integer(kib) * 1024
    else
      _ -> nil
    end
  end

  @doc "The RSS from `ps -o rss= -p <pid>` (kilobytes on Linux, macOS and the BSDs)."
  @spec ps_rss(non_neg_integer()) :: non_neg_integer() | nil
  def ps_rss(os_pid) do
    with ps when is_binary(ps) <- System.find_executable("ps"),
         {out, 0} <- System.cmd(ps, ["-o", "rss=", "-p", Integer.to_string(os_pid)]),
         {kib, _} <- Integer.parse(String.trim(out)) do
      kib * 1024
    else
      _ -> nil
    end
  end
end
