defmodule Snex.Bench.JSON do
  @moduledoc false
  # A small JSON encoder for the benchmarks' `--json` output (OTP 25 and Elixir 1.14 have no
  # JSON module, and no hex packages are used). Encodes maps (keys sorted; atom or string keys),
  # lists, strings, integers, floats, `true`, `false` and `nil` (`null`); other atoms become
  # strings. Objects and arrays are indented by two spaces per level.

  @doc "The JSON text of `term`, as a string."
  @spec encode(term()) :: String.t()
  def encode(term), do: term |> encode(0) |> IO.iodata_to_binary()

  defp encode(nil, _), do: "null"
  defp encode(true, _), do: "true"
  defp encode(false, _), do: "false"
  defp encode(atom, _) when is_atom(atom), do: string(Atom.to_string(atom))
  defp encode(string, _) when is_binary(string), do: string(string)
  defp encode(int, _) when is_integer(int), do: Integer.to_string(int)
  defp encode(float, _) when is_float(float), do: :erlang.float_to_binary(float, [:short])
  defp encode(map, _) when map == %{}, do: "{}"
  defp encode([], _), do: "[]"

  defp encode(map, level) when is_map(map) do
    map
    |> Enum.map(fn {key, value} -> {key_string(key), value} end)
    |> Enum.sort()
    |> Enum.map(fn {key, value} -> [string(key), ": ", encode(value, level + 1)] end)
    |> block("{", "}", level)
  end

  defp encode(list, level) when is_list(list),
    do: list |> Enum.map(&encode(&1, level + 1)) |> block("[", "]", level)

  defp block(items, open, close, level) do
    inner = String.duplicate("  ", level + 1)
    [open, "\n", inner, Enum.intersperse(items, [",\n", inner]), "\n", indent(level), close]
  end

  defp indent(level), do: String.duplicate("  ", level)

  defp key_string(key) when is_atom(key), do: Atom.to_string(key)
  defp key_string(key) when is_binary(key), do: key

  defp string(s), do: [?", escape(s), ?"]

  defp escape(s) do
    for <<c::utf8 <- s>>, into: "" do
      case c do
        ?" -> "\\\""
        ?\\ -> "\\\\"
        ?\n -> "\\n"
        ?\r -> "\\r"
        ?\t -> "\\t"
        c when c < 0x20 -> "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")
        c -> <<c::utf8>>
      end
    end
  end
end
