defmodule Snex.Bench.Report do
  @moduledoc false
  # The figures of bench/all.exs: each figure is a median next to its floor, measured in the
  # same run and in the same unit, with the ratio of the two and the goal that the ratio must
  # meet. Printed as a table, or as one JSON document.

  @typedoc """
  `{:at_most, r}`: ratio ≤ r; `{:at_least, r}`: ratio ≥ r; `{:back_to_floor, fraction, slack}`:
  the value is at most the floor plus `max(fraction × floor, slack)` (slack in the figure's
  unit).
  """
  @type goal ::
          {:at_most, number()} | {:at_least, number()} | {:back_to_floor, number(), number()}

  @doc "A figure: `value` and `floor` in `unit`, the ratio value/floor and whether `goal` is met."
  @spec figure(String.t(), String.t(), number(), String.t(), String.t(), number(), goal()) ::
          map()
  def figure(id, name, value, unit, floor_name, floor, goal) do
    ratio = value / floor

    %{
      id: id,
      name: name,
      value: value,
      unit: unit,
      floor_name: floor_name,
      floor: floor,
      ratio: ratio,
      goal: goal,
      met: met?(goal, value, floor, ratio)
    }
  end

  @doc "A reference figure, printed for context: no floor and no goal."
  @spec reference(String.t(), number() | String.t() | [number()], String.t()) :: map()
  def reference(name, value, unit \\ ""), do: %{name: name, value: value, unit: unit}

  @doc "Whether `goal` is met by a figure of `value`, `floor` and `ratio`."
  @spec met?(goal(), number(), number(), number()) :: boolean()
  def met?({:at_most, r}, _value, _floor, ratio), do: ratio <= r
  def met?({:at_least, r}, _value, _floor, ratio), do: ratio >= r

  def met?({:back_to_floor, fraction, slack}, value, floor, _ratio),
    do: value - floor <= max(fraction * floor, slack)

  @doc "The goal as text, for the table."
  @spec goal_text(goal(), String.t()) :: String.t()
  def goal_text({:at_most, r}, _unit), do: "≤ #{short(r)}×"
  def goal_text({:at_least, r}, _unit), do: "≥ #{short(r)}×"

  def goal_text({:back_to_floor, fraction, slack}, unit),
    do: "≤ floor + max(#{short(fraction * 100)} %, #{short(slack)} #{unit})"

  defp short(x) when is_float(x) and x == trunc(x), do: Integer.to_string(trunc(x))
  defp short(x) when is_float(x), do: Float.to_string(x)
  defp short(n), do: Integer.to_string(n)

  @doc "The figures and references as a table, followed by how many goals are met."
  @spec table([map()], [map()]) :: iodata()
  def table(figures, references) do
    header = ["figure", "median", "floor (same run)", "", "ratio", "goal", "met"]

    rows =
      for f <- figures do
        [
          f.name,
          with_unit(f.value, f.unit),
          f.floor_name,
          with_unit(f.floor, f.unit),
          number(f.ratio) <> "×",
          goal_text(f.goal, f.unit),
          if(f.met, do: "yes", else: "NO")
        ]
      end

    refs = for r <- references, do: [r.name, with_unit(r.value, r.unit)]
    met = Enum.count(figures, & &1.met)

    [
      Snex.Bench.columns([header | rows]),
      "\nreferences (same run)\n",
      Snex.Bench.columns(refs),
      "\ngoals met: #{met} of #{length(figures)}\n"
    ]
  end

  @doc "The JSON document (see bench/README.md) of a run: `meta` and every figure."
  @spec json(map(), [map()], [map()]) :: String.t()
  def json(meta, figures, references) do
    Snex.Bench.JSON.encode(%{
      meta: meta,
      figures: Enum.map(figures, &json_figure/1),
      references: Enum.map(references, &Map.update!(&1, :value, fn v -> round_number(v) end)),
      goals_met: Enum.count(figures, & &1.met),
      goals: length(figures)
    })
  end

  defp json_figure(f) do
    %{
      f
      | value: round_number(f.value),
        floor: round_number(f.floor),
        ratio: round_number(f.ratio),
        goal: json_goal(f.goal)
    }
    |> Map.put(:goal_text, goal_text(f.goal, f.unit))
  end

  defp json_goal({:at_most, r}), do: %{op: "<=", ratio: r}
  defp json_goal({:at_least, r}), do: %{op: ">=", ratio: r}

  defp json_goal({:back_to_floor, fraction, slack}),
    do: %{op: "back_to_floor", within_fraction: fraction, within: slack}

  defp with_unit(value, ""), do: number(value)
  defp with_unit(value, "×"), do: number(value) <> "×"
  defp with_unit(value, unit), do: "#{number(value)} #{unit}"

  @doc """
  A number with 3 significant digits or more (no decimals from 100 up); a list of numbers
  joined by ` / `.
  """
  @spec number(number() | String.t() | [number()]) :: String.t()
  def number(text) when is_binary(text), do: text
  def number(list) when is_list(list), do: Enum.map_join(list, " / ", &number/1)
  def number(n) when is_integer(n), do: Integer.to_string(n)
  def number(x) when abs(x) >= 100, do: x |> round() |> Integer.to_string()
  def number(x) when abs(x) >= 10, do: :erlang.float_to_binary(x / 1, decimals: 1)
  def number(x), do: :erlang.float_to_binary(x / 1, decimals: 2)

  defp round_number(x) when is_float(x), do: Float.round(x, 3)
  defp round_number(list) when is_list(list), do: Enum.map(list, &round_number/1)
  defp round_number(other), do: other
end
