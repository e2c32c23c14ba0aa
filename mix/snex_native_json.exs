defmodule Mix.Tasks.Compile.SnexNative.JSON do
  @moduledoc """
  A small JSON decoder for cargo's `--message-format=json` lines: Snex has no dependencies,
  and Elixir 1.14 / OTP 25 have no JSON module.

  Objects become maps with string keys, arrays lists, `null` `nil`; numbers become integers or
  floats.
  """

  @doc "Decodes one JSON text; `:error` unless the whole text is one valid JSON value."
  @spec decode(binary()) :: {:ok, term()} | :error
  def decode(text) when is_binary(text) do
    case value(skip(text)) do
      {value, rest} -> if skip(rest) == "", do: {:ok, value}, else: :error
    end
  catch
    :invalid -> :error
  end

  defp value("{" <> rest), do: object(skip(rest), %{})
  defp value("[" <> rest), do: array(skip(rest), [])
  defp value("\"" <> rest), do: string(rest, [])
  defp value("true" <> rest), do: {true, rest}
  defp value("false" <> rest), do: {false, rest}
  defp value("null" <> rest), do: {nil, rest}
  defp value(text), do: number(text)

  defp object("}" <> rest, acc) when acc == %{}, do: {acc, rest}

  defp object("\"" <> rest, acc) do
    {key, rest} = string(rest, [])
    {value, rest} = value(skip(expect(skip(rest), ":")))
    acc = Map.put(acc, key, value)

    case skip(rest) do
      "," <> rest -> object(skip(rest), acc)
      "}" <> rest -> {acc, rest}
      _ -> throw(:invalid)
    end
  end

  defp object(_, _), do: throw(:invalid)

  defp array("]" <> rest, []), do: {[], rest}

  defp array(text, acc) do
    {value, rest} = value(text)

    case skip(rest) do
      "," <> rest -> array(skip(rest), [value | acc])
      "]" <> rest -> {Enum.reverse([value | acc]), rest}
      _ -> throw(:invalid)
    end
  end

  defp string("\"" <> rest, acc), do: {IO.iodata_to_binary(Enum.reverse(acc)), rest}

  defp string("\\u" <> <<hex::binary-4, rest::binary>>, acc) do
    case {code_unit(hex), rest} do
      # A surrogate pair: one code point in two escapes.
      {high, "\\u" <> <<low_hex::binary-4, rest::binary>>} when high in 0xD800..0xDBFF ->
        low = code_unit(low_hex)
        unless low in 0xDC00..0xDFFF, do: throw(:invalid)
        string(rest, [<<0x10000 + (high - 0xD800) * 0x400 + (low - 0xDC00)::utf8>> | acc])

      {unit, _} when unit in 0xD800..0xDFFF ->
        throw(:invalid)

      {unit, _} ->
        string(rest, [<<unit::utf8>> | acc])
    end
  end

  defp string("\\" <> <<escaped, rest::binary>>, acc) do
    char =
      case escaped do
        ?" -> ?"
        ?\\ -> ?\\
        ?/ -> ?/
        ?b -> ?\b
        ?f -> ?\f
        ?n -> ?\n
        ?r -> ?\r
        ?t -> ?\t
        _ -> throw(:invalid)
      end

    string(rest, [char | acc])
  end

  defp string(<<byte, rest::binary>>, acc) when byte >= 0x20, do: string(rest, [byte | acc])
  defp string(_, _), do: throw(:invalid)

  defp code_unit(hex) do
    case Integer.parse(hex, 16) do
      {unit, ""} -> unit
      _ -> throw(:invalid)
    end
  end

  defp number(text) do
    case Regex.run(~r/\A-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/, text) do
      [literal | fraction_or_exponent] ->
        rest = binary_part(text, byte_size(literal), byte_size(text) - byte_size(literal))

        if fraction_or_exponent == [] do
          {String.to_integer(literal), rest}
        else
          {float(literal), rest}
        end

      nil ->
        throw(:invalid)
    end
  end

  # "1e5" is valid JSON but not an Elixir float literal.
  defp float(literal) do
    {mantissa, exponent} =
      case String.split(literal, ["e", "E"]) do
        [m, e] -> {m, e}
        [m] -> {m, "0"}
      end

    mantissa = if String.contains?(mantissa, "."), do: mantissa, else: mantissa <> ".0"
    String.to_float(mantissa <> "e" <> exponent)
  rescue
    # Out of range.
    ArgumentError -> throw(:invalid)
  end

  defp expect(text, token) do
    size = byte_size(token)

    case text do
      <<^token::binary-size(size), rest::binary>> -> rest
      _ -> throw(:invalid)
    end
  end

  defp skip(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip(rest)
  defp skip(text), do: text
end
