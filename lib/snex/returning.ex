defmodule Snex.Returning do
  @moduledoc false
  # The deprecated `:returning` option of `Snex.pyeval/4` (Snex 0.4): Python expressions
  # evaluated after the code, whose values are the result (a list of expressions gives a list
  # of values, a single string a single value). It is kept so that code written for Snex 0.4
  # runs unchanged; new code uses `return`.

  @doc """
  Appends a top-level `return` of `returning` to `src` (nil: no code), warning once per call
  that the option is deprecated. `nil` leaves `src` as it is.
  """
  @spec append(String.t() | nil, String.t() | [String.t()] | nil) :: String.t() | nil
  def append(src, nil), do: src

  def append(src, returning) do
    expression = expression!(returning)

    IO.warn(
      "the :returning option of Snex.pyeval is deprecated: end the code with " <>
        "`return <expression>` instead"
    )

    # On lines of their own after the code: line numbers of the code stay right, a trailing
    # comment in an expression cannot swallow what follows, and the `return` is at the top
    # level whatever the indentation of the code's last line.
    (src || "") <> "\nreturn " <> expression <> "\n"
  end

  defp expression!(returning) when is_binary(returning), do: "(\n" <> returning <> "\n)"

  defp expression!([]), do: "[]"

  defp expression!(returning) when is_list(returning) do
    unless Enum.all?(returning, &is_binary/1), do: invalid!(returning)
    "[\n" <> Enum.map_join(returning, ",\n", &expression!/1) <> ",\n]"
  end

  defp expression!(other), do: invalid!(other)

  defp invalid!(other),
    do:
      raise(
        ArgumentError,
        "the :returning option takes a Python expression (a string) or a list of them, " <>
          "got: #{inspect(other)}"
      )
end
