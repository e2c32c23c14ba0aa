defmodule Snex.Sigils do
  @moduledoc ~S"""
  Sigils for Python code that remember where they are written, so that Python tracebacks point
  into the `.ex` file.

      import Snex.Sigils

      Snex.pyeval(env, ~p"return x + #{offset}")   # interpolates and unescapes
      Snex.pyeval(env, ~P"return '\n'")           # raw: no interpolation, no unescaping

      Snex.pyeval(env, ~p'''
      def f():
          raise ValueError("here")   # the traceback names this file and line
      f()
      ''')

  Each sigil gives a `Snex.Code` with the caller's file and the line on which the Python code
  starts (the line after the opening delimiter for heredocs). `~PY` is the same as `~P`; sigils
  with multi-letter names need Elixir 1.15 or later.
  """

  @doc "Python code with interpolation and escapes, as a `Snex.Code`."
  defmacro sigil_p({:<<>>, meta, pieces}, []) do
    src = {:<<>>, meta, Enum.map(pieces, &unescape/1)}
    code(src, meta, __CALLER__)
  end

  @doc "Raw Python code (no interpolation, no unescaping), as a `Snex.Code`."
  defmacro sigil_P({:<<>>, meta, [src]}, []) when is_binary(src), do: code(src, meta, __CALLER__)

  @doc "The same as `~P` (needs Elixir 1.15+ for the two-letter name)."
  defmacro sigil_PY({:<<>>, meta, [src]}, []) when is_binary(src), do: code(src, meta, __CALLER__)

  defp unescape(piece) when is_binary(piece), do: Macro.unescape_string(piece)
  defp unescape(other), do: other

  defp code(src, meta, caller) do
    line = (meta[:line] || caller.line) + if(Keyword.has_key?(meta, :indentation), do: 1, else: 0)
    file = caller.file

    quote do
      %Snex.Code{src: unquote(src), file: unquote(file), line: unquote(line)}
    end
  end
end
