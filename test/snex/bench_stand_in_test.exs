Code.require_file("bench_helper.exs", Path.expand("../../bench", __DIR__))

defmodule Snex.BenchStandInTest do
  # The stand-in runner of `scripts/bench` (`floors.py null-runner`, Snex's BEAM side alone)
  # still speaks the protocol a real interpreter speaks: started through `wrap_exec`, it makes
  # envs and answers EVAL frames with what `pyeval "return 1"` expects. No timing here.
  use ExUnit.Case, async: true

  test "an interpreter runs the stand-in and gets its answers" do
    assert [_, _, _] = Snex.Bench.null_runner_latency(3, 2)
  end
end
