for file <- ["bench_helper.exs", "json.exs", "report.exs"],
    do: Code.require_file(file, Path.expand("../../bench", __DIR__))

defmodule Snex.BenchReportTest do
  # The report of `scripts/bench` (bench/report.exs, bench/json.exs): goals, ratios and the
  # JSON document, read back by Python's json module. No timing is measured here.
  use Snex.InterpreterCase, async: true

  alias Snex.Bench.{JSON, Report}

  defp python_json(env, text),
    do: Snex.pyeval(env, "import json\nreturn json.loads(text)", %{"text" => text})

  test "JSON: every kind of value reads back in Python as written", %{env: env} do
    value = %{
      "text" => "quote \" backslash \\ newline \n tab \t return \r bell \a µs ≤ 1.5×",
      "numbers" => [0, -1, 12_345_678_901_234_567_890, 1.5, -0.25, 1.0e-7, 3.0e20],
      "empty" => %{"map" => %{}, "list" => []},
      "literals" => [true, false, nil],
      atom_key: :atom_value
    }

    assert {:ok, decoded} = python_json(env, JSON.encode(value))

    assert decoded == %{
             "text" => value["text"],
             "numbers" => value["numbers"],
             "empty" => %{"map" => %{}, "list" => []},
             "literals" => [true, false, nil],
             "atom_key" => "atom_value"
           }
  end

  test "JSON: object keys are sorted and nested values indented" do
    # Atom keys come before strings in a map; the text sorts them as strings.
    assert JSON.encode(%{:b => [1], "a" => %{c: nil}}) ==
             ~s({\n  "a": {\n    "c": null\n  },\n  "b": [\n    1\n  ]\n})
  end

  test "goals: at most, at least, back to the floor; boundaries are met" do
    assert Report.met?({:at_most, 1.5}, 0, 0, 1.5)
    refute Report.met?({:at_most, 1.5}, 0, 0, 1.51)
    assert Report.met?({:at_least, 4}, 0, 0, 4.0)
    refute Report.met?({:at_least, 4}, 0, 0, 3.99)

    # Within max(10 %, 20) of the floor.
    assert Report.met?({:back_to_floor, 0.1, 20}, 120, 100, nil)
    refute Report.met?({:back_to_floor, 0.1, 20}, 120.1, 100, nil)
    assert Report.met?({:back_to_floor, 0.1, 20}, 330, 300, nil)
    refute Report.met?({:back_to_floor, 0.1, 20}, 331, 300, nil)
    assert Report.met?({:back_to_floor, 0.1, 20}, 5, 100, nil)
  end

  test "a figure carries its ratio to the floor and whether its goal is met" do
    f = Report.figure("id", "name", 30.0, "ms", "pipe", 20.0, {:at_most, 1.5})
    assert %{ratio: 1.5, met: true, unit: "ms", floor: 20.0, value: 30.0} = f

    assert %{ratio: 0.25, met: false} =
             Report.figure("id", "name", 50.0, "MB/s", "pipe", 200.0, {:at_least, 0.5})
  end

  test "the JSON document has every figure with its floor, ratio, goal and outcome", %{env: env} do
    figures = [
      Report.figure("latency", "pyeval", 30.0, "µs", "port ping-pong", 10.0, {:at_most, 2}),
      Report.figure("callers", "50 callers", 50.0, "calls/s", "1 caller", 10.0, {:at_least, 4}),
      Report.figure("memory", "memory", 35.0, "MB", "before", 30.0, {:back_to_floor, 0.1, 20})
    ]

    references = [
      Report.reference("pickle alone", 8.123456, "ms"),
      Report.reference("p", "x"),
      Report.reference("per round", [6.12345, 64.0], "µs")
    ]

    text = Report.json(%{quick: true}, figures, references)

    assert {:ok, doc} = python_json(env, text)
    assert %{"meta" => %{"quick" => true}, "goals_met" => 2, "goals" => 3} = doc

    assert [latency, callers, memory] = doc["figures"]

    assert latency == %{
             "id" => "latency",
             "name" => "pyeval",
             "value" => 30.0,
             "unit" => "µs",
             "floor_name" => "port ping-pong",
             "floor" => 10.0,
             "ratio" => 3.0,
             "goal" => %{"op" => "<=", "ratio" => 2},
             "goal_text" => "≤ 2×",
             "met" => false
           }

    assert %{"goal" => %{"op" => ">=", "ratio" => 4}, "met" => true} = callers

    assert %{
             "goal" => %{"op" => "back_to_floor", "within_fraction" => 0.1, "within" => 20},
             "met" => true
           } = memory

    assert doc["references"] == [
             %{"name" => "pickle alone", "value" => 8.123, "unit" => "ms"},
             %{"name" => "p", "value" => "x", "unit" => ""},
             %{"name" => "per round", "value" => [6.123, 64.0], "unit" => "µs"}
           ]
  end

  test "the table shows every figure, its floor, ratio, goal and outcome" do
    figures = [
      Report.figure("a", "10 MB out", 3.0, "ms", "pipe", 2.0, {:at_most, 1.5}),
      Report.figure("b", "10 MB in", 4.0, "ms", "pipe", 2.0, {:at_most, 1.5})
    ]

    references = [
      Report.reference("ref", 1.0, "ms"),
      Report.reference("rounds", [6.5, 64.25], "µs"),
      Report.reference("ratio", 18.25, "×")
    ]

    text = IO.iodata_to_binary(Report.table(figures, references))
    assert text =~ ~r/^10 MB out +3\.00 ms +pipe +2\.00 ms +1\.50× +≤ 1\.5× +yes$/m
    assert text =~ ~r/^10 MB in +4\.00 ms +pipe +2\.00 ms +2\.00× +≤ 1\.5× +NO$/m
    assert text =~ ~r/^ref +1\.00 ms$/m
    assert text =~ ~r/^rounds +6\.50 \/ 64\.3 µs$/m
    assert text =~ ~r/^ratio +18\.3×$/m
    assert text =~ "goals met: 1 of 2"
  end
end
