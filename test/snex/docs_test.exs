defmodule Snex.DocsTest do
  # The docs as `h` shows them in IEx, which renders them with `IO.ANSI.Docs`.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  @modules Application.spec(:snex, :modules) |> Enum.sort()

  test "no doc has an accidental table: consecutive lines with a `|` outside code" do
    # IO.ANSI.Docs renders two or more consecutive lines that each contain a `|` as a table
    # (dropping their indentation and padding the cells), which breaks a list item whose
    # continuation lines show types such as `{low, high} | :disabled`. Only real tables,
    # whose lines start with `|`, may do that.
    tables =
      for module <- @modules,
          {where, doc} <- docs(module),
          [a, b] <- Enum.chunk_every(prose_lines(doc), 2, 1, :discard),
          pipe?(a) and pipe?(b) and not (table_row?(a) and table_row?(b)),
          do: "#{inspect(module)} #{where}:\n  #{a}\n  #{b}"

    assert tables == [], "these render as tables in IEx:\n" <> Enum.join(tables, "\n")
  end

  test "h Snex.Interpreter renders the :port_opts items as a list, with an example" do
    output =
      capture_io(fn ->
        IO.ANSI.Docs.print(moduledoc(Snex.Interpreter), "text/markdown", enabled: false)
      end)

    assert output =~ ~r/^\s+\* `:port_opts` - a list of transport options/m
    assert output =~ ~r/^\s+\* `\{:busy_limits_port, limits\}` - `limits` is `\{low, high\}`/m
    assert output =~ ~r/^## Example$/m
    assert output =~ "Snex.Interpreter.start_link(init_script: \"import math\")"
  end

  test "the example of Snex.Interpreter runs as written" do
    [_, example] = Regex.run(~r/## Example\n\n(.*?)\n\n(?! )/s, moduledoc(Snex.Interpreter))
    {_, binding} = example |> String.replace(~r/^    /m, "") |> Code.eval_string()
    assert {:ok, _} = binding[:interpreter] |> Snex.pyeval("return 1")
  end

  defp moduledoc(module) do
    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(module)
    doc
  end

  defp docs(module) do
    case Code.fetch_docs(module) do
      {:docs_v1, _, _, _, moduledoc, _, entries} ->
        module_doc = for %{"en" => doc} <- [moduledoc], do: {"@moduledoc", doc}

        entry_docs =
          for {{kind, name, arity}, _, _, %{"en" => doc}, _} <- entries,
              do: {"#{kind} #{name}/#{arity}", doc}

        module_doc ++ entry_docs

      _ ->
        []
    end
  end

  # The lines of `doc`, trimmed, with those of indented code blocks (4 spaces deeper than the
  # prose before them, after a blank line) and fenced ones blanked out.
  defp prose_lines(doc) do
    doc
    |> String.split("\n")
    |> Enum.map_reduce({:prose, 0}, fn line, {state, prose_indent} ->
      trimmed = String.trim(line)
      indent = byte_size(line) - byte_size(String.trim_leading(line))

      case state do
        _ when trimmed == "" ->
          {"", {blank_state(state), prose_indent}}

        :fenced ->
          {"", {if(fence?(trimmed), do: :prose, else: :fenced), prose_indent}}

        _ when indent >= prose_indent + 4 and state in [:blank, :code] ->
          {"", {:code, prose_indent}}

        _ ->
          if fence?(trimmed), do: {"", {:fenced, indent}}, else: {trimmed, {:prose, indent}}
      end
    end)
    |> elem(0)
  end

  defp blank_state(:fenced), do: :fenced
  defp blank_state(:code), do: :code
  defp blank_state(_), do: :blank

  defp fence?(trimmed), do: String.starts_with?(trimmed, "```")

  defp pipe?(line), do: line != "" and String.contains?(String.replace(line, "|>", ""), "|")
  defp table_row?(line), do: String.starts_with?(line, "|")
end
