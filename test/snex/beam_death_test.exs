defmodule Snex.BeamDeathTest do
  use ExUnit.Case, async: true

  alias Snex.Test.OSProcess

  @tag timeout: 60_000
  test "a BEAM killed with SIGKILL takes its Python process with it" do
    ebin = Application.app_dir(:snex, "ebin")

    script = """
    {:ok, _} = Application.ensure_all_started(:snex)
    {:ok, i} = Snex.Interpreter.start_link()
    IO.puts("PIDS \#{System.pid()} \#{Snex.Interpreter.os_pid(i)}")
    Process.sleep(:infinity)
    """

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        {:line, 1024},
        args: ["-pa", ebin, "-e", script]
      ])

    {beam_pid, python_pid} = read_pids(port)
    assert OSProcess.alive?(python_pid)
    System.cmd("kill", ["-9", beam_pid])
    assert_receive {^port, {:exit_status, _}}, 10_000
    assert OSProcess.wait_gone(python_pid, 5_000)
  end

  defp read_pids(port) do
    receive do
      {^port, {:data, {:eol, "PIDS " <> rest}}} ->
        [beam, python] = String.split(rest)
        {beam, String.to_integer(python)}

      {^port, {:data, _other}} ->
        read_pids(port)
    after
      30_000 -> flunk("the child BEAM did not start an interpreter")
    end
  end
end
